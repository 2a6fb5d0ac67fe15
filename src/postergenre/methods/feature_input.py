"""What the methods on backbone features share: they read features [n, 1280], and hold the
backbone that makes them, so a model folder turns new posters into its own features.

The pipeline hands them the embed stage's cached features where those are exactly what the
model's backbone computes (same weights, same poster size), and features computed from the
posters otherwise; `predict` always computes them from the posters.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from postergenre import backbone as bb
from postergenre import dataset
from postergenre.methods.base import read_saved

log = logging.getLogger(__name__)


class FeatureInput:
    """Mixin for an Estimator on backbone features. Holds the backbone (unfused, as saved) and a
    fused copy for inference."""

    def _init_backbone(self) -> None:
        self._backbone: bb.EfficientNetLite | None = None
        self._fused: bb.EfficientNetLite | None = None
        self.backbone_sha256 = ""
        self.finetuned = False  # the backbone's weights are no longer the wheel's

    @property
    def backbone_name(self) -> str:
        return self.params["backbone"]

    def backbone(self) -> bb.EfficientNetLite:
        if self._backbone is None:
            path = bb.wheel_weights_path(self.backbone_name)
            self._backbone = bb.load_backbone(self.backbone_name, path)
            self.backbone_sha256 = bb.file_sha256(path)
        return self._backbone

    def _check_X(self, X: np.ndarray) -> None:
        if X.ndim != 2 or X.shape[1] != bb.FEATURES:
            raise ValueError(f"X must be {self.backbone_name} features [n, {bb.FEATURES}], got shape "
                             f"{list(X.shape)} (posters go through `inputs_from_posters` first)")

    def inputs_from_posters(self, X: np.ndarray) -> np.ndarray:
        """This model's backbone's features of posters [n, H, W, 3]."""
        if self._fused is None:
            self._fused = bb.fused(self.backbone())
        return bb.embed(self._fused, X, self.params["embed_batch_size"])

    def cached_features_mismatch(self, features: Path = dataset.FEATURES) -> str | None:
        """None if the embed stage's features are exactly what this model's backbone computes
        from its posters; otherwise why not."""
        info = dataset.read_embed_info(features)
        if info["size"] != self.size:
            return f"data/features holds features of {info['size']} posters, the model reads {self.size}"
        self.backbone_sha256 or self.backbone()  # not fitted yet: the wheel's weights
        if self.finetuned or info["weights_sha256"] != self.backbone_sha256:
            return (f"data/features was made with {self.backbone_name} weights of sha256 "
                    f"{info['weights_sha256'][:12]}..., not this model's backbone "
                    f"({self.backbone_sha256[:12]}..., fine-tuned: {self.finetuned})")
        return None

    def inputs(self, split: str, genres: list[str], training: bool = False) -> dataset.Split:
        """The embed stage's features where they fit this model; else (not for training, where
        stale features are an error) its backbone's features of the posters."""
        mismatch = self.cached_features_mismatch()
        if mismatch is None:
            return dataset.load_features(split, self.backbone_name, genres)
        if training:
            raise ValueError(f"{mismatch}; re-run the embed stage")
        log.info("%s: computing the %s split's features from its posters", mismatch, split)
        posters = dataset.load_split(split, self.size, genres)
        return dataset.Split(posters.ids, self.inputs_from_posters(posters.X), posters.Y)

    def _backbone_state(self) -> dict[str, Any]:
        return {"backbone_sha256": self.backbone_sha256, "finetuned": self.finetuned}

    def _set_backbone_state(self, state: dict[str, Any]) -> None:
        self.backbone_sha256 = state["backbone_sha256"]
        self.finetuned = state["finetuned"]

    def _save_backbone(self, folder: Path) -> None:
        torch.save(self.backbone().state_dict(), folder / "backbone.pt")

    def _load_backbone(self, folder: Path) -> None:
        self._backbone = read_saved(folder / "backbone.pt",
                                    lambda path: bb.load_backbone(self.backbone_name, path))
        self._fused = None

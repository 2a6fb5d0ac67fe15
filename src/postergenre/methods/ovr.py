"""One-vs-rest kNN on flattened pixels scaled to [0, 1], the study's other kNN method."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from postergenre.core.settings import Size
from postergenre.methods.knn.neighbours import KNNEstimator, KNNSettings


class Settings(KNNSettings):
    """methods.ovr: one binary kNN per genre, on pixels at `size`."""

    study: ClassVar[bool] = True
    size: Size = "64x64"


class OneVsRestKNN(KNNEstimator):
    """One binary kNN classifier per genre. All of them share the same k neighbours, so the
    score of a genre is the share of a poster's k nearest training posters that carry it."""

    method = "ovr"
    Settings = Settings

    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None, checkpoints=None) -> None:
        self._store(X, Y)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._neighbour_counts(X) / self.k

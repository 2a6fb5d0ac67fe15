"""One-vs-rest kNN on flattened pixels scaled to [0, 1], the study's other kNN method."""

from __future__ import annotations

import numpy as np

from postergenre.methods.neighbours import KNNEstimator

SPEC = {
    "estimator": "OneVsRestKNN",
    "input": "pixels",
    "reads": ["k"],
    "params": {"size": "size"},
}


class OneVsRestKNN(KNNEstimator):
    """One binary kNN classifier per genre. All of them share the same k neighbours, so the
    score of a genre is the share of a poster's k nearest training posters that carry it."""

    method = "ovr"

    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None, checkpoints=None) -> None:
        self._store(X, Y)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._neighbour_counts(X) / self.k

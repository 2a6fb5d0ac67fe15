"""ML-kNN's posterior (Zhang & Zhou 2007), shared by ML-kNN on pixels and on backbone features."""

from __future__ import annotations

from typing import Any

import numpy as np

from postergenre.methods.knn.neighbours import KNNEstimator, self_neighbours


class MLkNNPosterior(KNNEstimator):
    """ML-kNN (Zhang & Zhou 2007): per genre, Bayes' rule on how many neighbours carry it.

    scikit-multilearn-ng's `MLkNN(k, s)` (training neighbours include the poster itself, as
    there) on the neighbour sets of exact distances (knn/neighbours.py), vectorised: one
    neighbour search and a few array operations.
    `predict_proba` is the normalised posterior P(genre | neighbour count).
    """

    def __init__(self, genres: list[str], size: str, seed: int = 0, k: int = 10, **params: Any):
        super().__init__(genres, size, seed, k=k, **params)
        self.s = self.params["s"]  # Laplace smoothing

    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None, checkpoints=None) -> None:
        self._store(X, Y)
        n, k, s = len(Y), self.k, self.s
        self.prior_true = (s + Y.sum(axis=0)) / (s * 2 + n)
        counts = self.Y_train[self_neighbours(self.X_train, k, self.search_vectors)].sum(axis=1)
        self.cond_true = np.empty((Y.shape[1], k + 1))
        self.cond_false = np.empty((Y.shape[1], k + 1))
        for j in range(Y.shape[1]):
            has = Y[:, j] == 1
            c_true = np.bincount(counts[has, j], minlength=k + 1)
            c_false = np.bincount(counts[~has, j], minlength=k + 1)
            self.cond_true[j] = (s + c_true) / (s * (k + 1) + c_true.sum())
            self.cond_false[j] = (s + c_false) / (s * (k + 1) + c_false.sum())

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        counts = self._neighbour_counts(X)
        cols = np.arange(len(self.genres))[None, :]
        p_true = self.prior_true[None, :] * self.cond_true[cols, counts]
        p_false = (1 - self.prior_true[None, :]) * self.cond_false[cols, counts]
        return p_true / (p_true + p_false)

    def _state(self) -> dict[str, Any]:
        return {
            "prior_true": self.prior_true.tolist(),
            "cond_true": self.cond_true.tolist(),
            "cond_false": self.cond_false.tolist(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.prior_true = np.asarray(state["prior_true"])
        self.cond_true = np.asarray(state["cond_true"])
        self.cond_false = np.asarray(state["cond_false"])

"""The study's kNN methods on flattened pixels scaled to [0, 1]: ML-kNN and one-vs-rest kNN.

Both need the same thing, the k nearest training posters of each poster, found here once by
brute-force Euclidean distance through BLAS (float32), which is what makes ML-kNN on all real
training posters at 100x150 (7,757 x 45,000) fit in a minute on two cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from postergenre.methods.base import Estimator

_BLOCK = 1024


def flatten(X: np.ndarray) -> np.ndarray:
    """Posters [n, H, W, 3] uint8 -> float32 [n, H*W*3] in [0, 1]."""
    return X.reshape(len(X), -1).astype(np.float32) / np.float32(255)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k smallest scores of each row, nearest first."""
    part = np.argpartition(scores, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def neighbours(train: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """[n_query, k] indices into `train` of each query's k nearest rows (Euclidean)."""
    if k > len(train):
        raise ValueError(f"k={k} is more than the {len(train)} training posters")
    train_sq = np.einsum("ij,ij->i", train, train)
    out = np.empty((len(query), k), dtype=np.int64)
    for start in range(0, len(query), _BLOCK):
        block = query[start:start + _BLOCK]
        # |q - x|^2 = |q|^2 - 2 q.x + |x|^2; |q|^2 is the same along a row, so it cannot reorder.
        out[start:start + len(block)] = _top_k(train_sq[None, :] - 2 * (block @ train.T), k)
    return out


def self_neighbours(train: np.ndarray, k: int) -> np.ndarray:
    """Each training row's k nearest training rows, itself included (as scikit-multilearn does).

    The Gram matrix X X^T comes from one symmetric rank-k update (BLAS syrk), half the work of
    a general product.
    """
    from scipy.linalg.blas import ssyrk

    if k > len(train):
        raise ValueError(f"k={k} is more than the {len(train)} training posters")
    gram = ssyrk(1.0, train.T, trans=1)  # upper triangle of X X^T; train.T is Fortran-ordered
    gram = np.triu(gram) + np.triu(gram, 1).T
    sq = np.diag(gram).copy()
    scores = sq[None, :] - 2 * gram
    del gram
    return _top_k(scores, k)


class _KNNBase(Estimator):
    """Keeps the training posters and labels; `k` is the top-level parameter."""

    def __init__(self, genres: list[str], size: str, seed: int = 0, k: int = 10, **params: Any):
        super().__init__(genres, size, seed, k=k, **params)
        self.k = k

    def _neighbour_counts(self, X: np.ndarray) -> np.ndarray:
        """[n, n_genres] how many of each poster's k nearest training posters carry each genre."""
        self._check_X(X)
        query, train = self._vectors(X), self._train_features()
        if query.shape[1:] != train.shape[1:]:
            raise ValueError(f"inputs give {query.shape[1]} values each, the model was trained on "
                             f"{train.shape[1]} (posters of another size?)")
        idx = neighbours(train, query, self.k)
        return self.Y_train[idx].sum(axis=1, dtype=np.int64)

    def _vectors(self, X: np.ndarray) -> np.ndarray:
        """What distances are measured on: here flattened pixels in [0, 1]."""
        return flatten(X)

    def _train_features(self) -> np.ndarray:
        if getattr(self, "_features", None) is None:
            self._features = self._vectors(self.X_train)
        return self._features

    def _store(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.X_train = np.ascontiguousarray(X)
        self.Y_train = np.ascontiguousarray(Y, dtype=np.uint8)
        self._features = None

    def _save_weights(self, folder: Path) -> None:
        np.save(folder / "train_inputs.npy", self.X_train)
        np.save(folder / "train_labels.npy", self.Y_train)

    def _load_weights(self, folder: Path) -> None:
        self._store(np.load(folder / "train_inputs.npy"), np.load(folder / "train_labels.npy"))


class MLkNN(_KNNBase):
    """ML-kNN (Zhang & Zhou 2007): per genre, Bayes' rule on how many neighbours carry it.

    Identical to scikit-multilearn-ng's `MLkNN(k, s)` (training neighbours include the poster
    itself, as there), vectorised: one neighbour search and a few array operations.
    `predict_proba` is the normalised posterior P(genre | neighbour count).
    """

    method = "mlknn"

    def __init__(self, genres: list[str], size: str, seed: int = 0, k: int = 10, s: float = 1.0,
                 **params: Any):
        super().__init__(genres, size, seed, k=k, s=s, **params)
        self.s = s

    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None) -> None:
        self._store(X, Y)
        n, k, s = len(Y), self.k, self.s
        self.prior_true = (s + Y.sum(axis=0)) / (s * 2 + n)
        counts = self.Y_train[self_neighbours(self._train_features(), k)].sum(axis=1)
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
        return {"prior_true": self.prior_true.tolist(), "cond_true": self.cond_true.tolist(),
                "cond_false": self.cond_false.tolist()}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.prior_true = np.asarray(state["prior_true"])
        self.cond_true = np.asarray(state["cond_true"])
        self.cond_false = np.asarray(state["cond_false"])


class OneVsRestKNN(_KNNBase):
    """One binary kNN classifier per genre. All of them share the same k neighbours, so the
    score of a genre is the share of a poster's k nearest training posters that carry it."""

    method = "ovr"

    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None) -> None:
        self._store(X, Y)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._neighbour_counts(X) / self.k

"""What the kNN methods share: the k nearest training posters of each poster, and a base class
that keeps the training set.

Neighbours are found by brute-force Euclidean distance through BLAS (float32), which is what
makes ML-kNN on all real training posters at 100x150 (7,757 x 45,000) fit in a minute on two
cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from postergenre.methods.base import Estimator, MethodSettings, NeighbourSpace, read_saved

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


class KNNSettings(MethodSettings):
    """A method of the `knn` family: it reads the top-level `k`."""

    family: Literal["knn"] = "knn"
    reads: Literal["k"] = "k"


class KNNEstimator(Estimator):
    """Keeps the training posters and labels; `k` is the top-level parameter."""

    def __init__(self, genres: list[str], size: str, seed: int = 0, k: int = 10, **params: Any):
        super().__init__(genres, size, seed, k=k, **params)
        self.k = k

    def _neighbour_counts(self, X: np.ndarray) -> np.ndarray:
        """[n, n_genres] how many of each poster's k nearest training posters carry each genre."""
        self._check_X(X)
        query, train = self.vectors(X), self.train_vectors()
        if query.shape[1:] != train.shape[1:]:
            raise ValueError(f"inputs give {query.shape[1]} values each, the model was trained on "
                             f"{train.shape[1]} (posters of another size?)")
        idx = neighbours(train, query, self.k)
        return self.Y_train[idx].sum(axis=1, dtype=np.int64)

    def vectors(self, X: np.ndarray) -> np.ndarray:
        """What distances are measured on: here flattened pixels in [0, 1]."""
        return flatten(X)

    def train_vectors(self) -> np.ndarray:
        """The training posters as vectors of the space neighbours are searched in."""
        if getattr(self, "_features", None) is None:
            self._features = self.vectors(self.X_train)
        return self._features

    space_described = "the method's own space: pixels at {size}"

    def neighbour_space(self) -> NeighbourSpace:
        """Its own: the training posters it holds, as it measures distances."""
        return NeighbourSpace("euclidean", self.space_described.format(size=self.size),
                              self.vectors, self.train_vectors, cacheable=False)

    def _store(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.X_train = np.ascontiguousarray(X)
        self.Y_train = np.ascontiguousarray(Y, dtype=np.uint8)
        self._features = None

    def _save_weights(self, folder: Path) -> None:
        np.save(folder / "train_inputs.npy", self.X_train)
        np.save(folder / "train_labels.npy", self.Y_train)

    def _load_weights(self, folder: Path) -> None:
        self._store(read_saved(folder / "train_inputs.npy", np.load),
                    read_saved(folder / "train_labels.npy", np.load))

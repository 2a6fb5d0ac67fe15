"""What the kNN methods share: the k nearest training posters of each poster, and a base class
that keeps the training set.

Neighbours are found by brute-force Euclidean distance, a block of rows at a time, keeping each
row's k nearest so far: beside the posters themselves, memory is two blocks of vectors and their
distances whatever the number of posters. Pixels enter as int8 (each value less 128, which
leaves every difference as it is), so each product is a sum of integers and exact: on torch's
int8 kernel (int32 sums, oneDNN's VNNI/AMX paths where the CPU has them) when the search is big
enough to pay for importing torch, else in float64 through BLAS, which holds the same integers
exactly. Equal distances go to the lower training index. The neighbour sets are therefore those
of exact arithmetic, which scikit-multilearn-ng's MLkNN (scikit-learn's brute-force search, in
float64) finds too, bar ties (bench/mlknn.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from postergenre.methods.base import Estimator, MethodSettings, NeighbourSpace, read_saved

BLOCK = 2048  # rows of vectors converted and multiplied at a time
# Multiply-adds below which float64 BLAS finishes before torch (about 3 s to import) would; both
# give the same exact integers. Measured with bench/mlknn.py: at 45,000 values a poster the int8
# kernel took 0.3 s for a 2,048 x 2,048 block where float64 took 5.6 s.
TORCH_MIN_WORK = 1e11
# Values a product may sum in int32: each term is at most 128 * 128 in size.
INT32_VALUES = 2**31 // 128**2
# Fewest values a row for the int8 kernel: torch 2.14's CPU kernel returns wrong sums for rows of
# a single value (tests/test_methods.py scans the shapes), and tiny rows gain nothing from it.
INT8_MIN_VALUES = 64


def flatten(X: np.ndarray) -> np.ndarray:
    """Posters [n, H, W, 3] uint8 -> float32 [n, H*W*3] in [0, 1]."""
    return X.reshape(len(X), -1).astype(np.float32) / np.float32(255)


def pixel_vectors(X: np.ndarray) -> np.ndarray:
    """Posters [n, H, W, 3] uint8 -> int8 [n, H*W*3], each value less 128: distances in units of
    1/255**2 of `flatten`'s, the same order, and exact (`_products`)."""
    return (np.ascontiguousarray(X).reshape(len(X), -1) ^ np.uint8(0x80)).view(np.int8)


def _use_torch(n_query: int, n_train: int, n_values: int) -> bool:
    """Whether a search of this size takes int8 products on torch (see TORCH_MIN_WORK)."""
    if n_values < INT8_MIN_VALUES:
        return False
    return "torch" in sys.modules or n_query * n_train * n_values >= TORCH_MIN_WORK


def _products(a: np.ndarray, b: np.ndarray, use_torch: bool) -> np.ndarray:
    """a @ b.T in float64. Float vectors through BLAS; int8 vectors exactly: as int32 sums on
    torch's int8 kernel (in slices short enough that no sum overflows), or through float64 BLAS,
    where every partial sum is an integer below 2**53."""
    if a.dtype != np.int8:
        return a @ b.T
    if not use_torch:
        return a.astype(np.float64) @ b.astype(np.float64).T
    import torch

    out = np.zeros((len(a), len(b)))
    n = a.shape[1]
    width = -(-n // -(-n // INT32_VALUES))  # as few slices as can be, of equal width
    for start in range(0, n, width):
        cols = slice(start, start + width)
        ta = torch.from_numpy(np.ascontiguousarray(a[:, cols]))
        tb = torch.from_numpy(np.ascontiguousarray(b[:, cols]))
        out += torch._int_mm(ta, tb.T).numpy()
    return out


def _squared_norms(v: np.ndarray) -> np.ndarray:
    """Each row's squared length, in float64 (exact for int8 rows)."""
    if v.dtype == np.int8:
        return np.einsum("ij,ij->i", v, v, dtype=np.int64, casting="unsafe").astype(np.float64)
    return np.einsum("ij,ij->i", v, v)


def _smallest(d: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Column positions of each row's k smallest `d`, equal distances by the lower `idx`."""
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(d, part, axis=1).max(axis=1, keepdims=True)
    for row in np.flatnonzero((d <= kth).sum(axis=1) > k):  # a tie at the k-th: take it exactly
        part[row] = np.lexsort((idx[row], d[row]))[:k]
    return part


class _Nearest:
    """Each query row's k nearest training rows so far, merged in block by block."""

    def __init__(self, n: int, k: int):
        self.k = k
        self.d = np.full((n, k), np.inf)
        self.i = np.full((n, k), np.iinfo(np.int64).max, dtype=np.int64)

    def merge(self, rows: slice, d: np.ndarray, first: int) -> None:
        cand_d = np.concatenate([self.d[rows], d], axis=1)
        cand_i = np.concatenate(
            [self.i[rows], np.broadcast_to(np.arange(first, first + d.shape[1]), d.shape)], axis=1
        )
        keep = _smallest(cand_d, cand_i, self.k)
        self.d[rows] = np.take_along_axis(cand_d, keep, axis=1)
        self.i[rows] = np.take_along_axis(cand_i, keep, axis=1)

    def indices(self) -> np.ndarray:
        """[n, k] nearest first (equal distances: lower index first)."""
        order = np.lexsort((self.i, self.d), axis=-1)
        return np.take_along_axis(self.i, order, axis=1)


def _blocks(n: int) -> list[slice]:
    return [slice(start, min(start + BLOCK, n)) for start in range(0, n, BLOCK)]


def _check_k(train: np.ndarray, k: int) -> None:
    if k > len(train):
        raise ValueError(f"k={k} is more than the {len(train)} training posters")


def neighbours(
    train: np.ndarray, query: np.ndarray, k: int, vectors: Callable[[np.ndarray], np.ndarray] = pixel_vectors
) -> np.ndarray:
    """[n_query, k] indices into `train` of each query row's k nearest training rows (Euclidean on
    `vectors(rows)`: float vectors in float64, int8 ones exactly), nearest first."""
    _check_k(train, k)
    best = _Nearest(len(query), k)
    use_torch = _use_torch(len(query), len(train), int(np.prod(train.shape[1:])))
    for cols in _blocks(len(train)):
        vb = vectors(train[cols])
        sq_b = _squared_norms(vb)
        for rows in _blocks(len(query)):
            # |q - x|^2 = |q|^2 - 2 q.x + |x|^2; |q|^2 is the same along a row, so it cannot reorder
            gram = _products(vectors(query[rows]), vb, use_torch)
            best.merge(rows, sq_b[None, :] - 2 * gram, cols.start)
    return best.indices()


def self_neighbours(
    train: np.ndarray, k: int, vectors: Callable[[np.ndarray], np.ndarray] = pixel_vectors
) -> np.ndarray:
    """Each training row's k nearest training rows, itself included (as scikit-multilearn does).
    Each pair of blocks is multiplied once and read both ways."""
    _check_k(train, k)
    best = _Nearest(len(train), k)
    blocks = _blocks(len(train))
    use_torch = _use_torch(len(train), len(train), int(np.prod(train.shape[1:])))
    for a, rows in enumerate(blocks):
        va = vectors(train[rows])
        sq_a = _squared_norms(va)
        best.merge(rows, sq_a[None, :] - 2 * _products(va, va, use_torch), rows.start)
        for cols in blocks[a + 1 :]:
            vb = vectors(train[cols])
            gram = _products(va, vb, use_torch)
            best.merge(rows, _squared_norms(vb)[None, :] - 2 * gram, cols.start)
            best.merge(cols, sq_a[None, :] - 2 * gram.T, rows.start)
    return best.indices()


class KNNSettings(MethodSettings):
    """A method of the `knn` family: it reads the top-level `k`."""

    family: Literal["knn"] = "knn"
    reads: Literal["k"] = "k"


class KNNEstimator(Estimator):
    """Keeps the training posters and labels; `k` is the top-level parameter."""

    _features: np.ndarray | None  # the training posters as vectors, made on first use

    def __init__(self, genres: list[str], size: str, seed: int = 0, k: int = 10, **params: Any):
        super().__init__(genres, size, seed, k=k, **params)
        self.k = k

    def _neighbour_counts(self, X: np.ndarray) -> np.ndarray:
        """[n, n_genres] how many of each poster's k nearest training posters carry each genre."""
        self._check_X(X)
        given, trained = int(np.prod(X.shape[1:])), int(np.prod(self.X_train.shape[1:]))
        if given != trained:
            raise ValueError(
                f"inputs give {given} values each, the model was trained on "
                f"{trained} (posters of another size?)"
            )
        idx = neighbours(self.X_train, X, self.k, self.search_vectors)
        return self.Y_train[idx].sum(axis=1, dtype=np.int64)

    def vectors(self, X: np.ndarray) -> np.ndarray:
        """What distances are measured on: here flattened pixels in [0, 1]."""
        return flatten(X)

    def search_vectors(self, X: np.ndarray) -> np.ndarray:
        """`vectors` as the neighbour search takes them, a block at a time: pixels as int8 (each
        value less 128: the same order, exact distances)."""
        return pixel_vectors(X)

    def train_vectors(self) -> np.ndarray:
        """The training posters as vectors of the space neighbours are searched in."""
        features: np.ndarray | None = getattr(self, "_features", None)
        if features is None:
            features = self._features = self.vectors(self.X_train)
        return features

    space_described = "the method's own space: pixels at {size}"

    def neighbour_space(self) -> NeighbourSpace:
        """Its own: the training posters it holds, as it measures distances."""
        return NeighbourSpace(
            "euclidean",
            self.space_described.format(size=self.size),
            self.vectors,
            self.train_vectors,
            cacheable=False,
        )

    def _store(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.X_train = np.ascontiguousarray(X)
        self.Y_train = np.ascontiguousarray(Y, dtype=np.uint8)
        self._features = None

    def _save_weights(self, folder: Path) -> None:
        np.save(folder / "train_inputs.npy", self.X_train)
        np.save(folder / "train_labels.npy", self.Y_train)

    def _load_weights(self, folder: Path) -> None:
        self._store(
            read_saved(folder / "train_inputs.npy", np.load), read_saved(folder / "train_labels.npy", np.load)
        )

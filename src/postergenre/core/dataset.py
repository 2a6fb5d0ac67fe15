"""What training and evaluation read: poster arrays, label matrices and the genre vocabulary.

Each reader takes its folder, or reads the one `paths` names (`data/` unless a stage's `--data` said
otherwise)."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from postergenre.core import paths


def content_sha256(*arrays: np.ndarray) -> str:
    """sha256 over arrays' shapes, types and bytes: what a model was trained on, or what a
    checkpoint must match."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype)).encode())
        h.update(a.data.cast("B") if a.size else b"")
    return h.hexdigest()


def read_genres(interim: Path | None = None) -> list[str]:
    """The genre vocabulary in model order."""
    return json.loads(((interim or paths.interim()) / "genres.json").read_text(encoding="utf-8"))["genres"]


def read_labels(interim: Path | None = None) -> dict[str, list[str]]:
    """id -> genre names, from the interim table."""
    with open((interim or paths.interim()) / "movies.csv", encoding="utf-8", newline="") as f:
        return {row["id"]: [g for g in row["genres"].split("|") if g] for row in csv.DictReader(f)}


def read_poster_paths(posters: Path, interim: Path | None = None) -> dict[str, Path]:
    """id -> poster file under the posters folder `posters`, in the interim table's order."""
    with open((interim or paths.interim()) / "movies.csv", encoding="utf-8", newline="") as f:
        return {row["id"]: posters / row["poster"] for row in csv.DictReader(f)}


def read_titles(interim: Path | None = None) -> dict[str, str]:
    """id -> title, from the interim table."""
    with open((interim or paths.interim()) / "movies.csv", encoding="utf-8", newline="") as f:
        return {row["id"]: row["title"] for row in csv.DictReader(f)}


def read_manifest(resized: Path | None = None) -> list[str]:
    """The ids of the resized arrays' rows, in row order."""
    with open((resized or paths.resized()) / "manifest.csv", encoding="utf-8", newline="") as f:
        return [row["id"] for row in csv.DictReader(f)]


def read_embed_info(backbone: str, view: str, features: Path | None = None) -> dict:
    """What the embed stage recorded for one backbone and view: weights' sha256, poster size,
    view, side, feature size."""
    path = paths.features_dir(backbone, view, features) / "embed.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no {backbone} features in view {view}; run the embed stage (`dvc repro embed`)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def label_matrix(label_lists: list[list[str]], genres: list[str]) -> np.ndarray:
    """[n, n_genres] 0/1 matrix; names outside `genres` are ignored."""
    column = {g: j for j, g in enumerate(genres)}
    Y = np.zeros((len(label_lists), len(genres)), dtype=np.uint8)
    for i, names in enumerate(label_lists):
        for g in names:
            if g in column:
                Y[i, column[g]] = 1
    return Y


def load_labels(
    name: str, genres: list[str], split_dir: Path | None = None, interim: Path | None = None
) -> np.ndarray:
    """One split's label matrix, without reading any posters."""
    ids = ((split_dir or paths.split()) / f"{name}.txt").read_text(encoding="utf-8").split()
    labels = read_labels(interim)
    return label_matrix([labels[i] for i in ids], genres)


@dataclass
class Split:
    ids: list[str]
    X: np.ndarray  # uint8 posters [n, H, W, 3], or float32 features [n, dim]
    Y: np.ndarray  # uint8 [n, n_genres]


def load_split(
    name: str,
    size: str,
    genres: list[str],
    resized: Path | None = None,
    split_dir: Path | None = None,
    interim: Path | None = None,
    limit: int | None = None,
) -> Split:
    """One split's posters at one size, with labels in `genres` order (its first `limit` only,
    if given)."""
    array_path = (resized or paths.resized()) / f"{size}.npy"
    if not array_path.is_file():
        raise FileNotFoundError(f"{array_path}: no posters at size {size}; add it to resize.sizes")
    return _load_rows(array_path, name, genres, resized, split_dir, interim, limit)


def load_features(
    name: str,
    backbone: str,
    view: str,
    genres: list[str],
    features: Path | None = None,
    resized: Path | None = None,
    split_dir: Path | None = None,
    interim: Path | None = None,
) -> Split:
    """One split's features of one backbone and view (the embed stage's rows follow the resize
    manifest)."""
    array_path = paths.features_dir(backbone, view, features) / "features.npy"
    if not array_path.is_file():
        raise FileNotFoundError(f"{array_path}: no {backbone} features in view {view}; run the embed stage")
    return _load_rows(array_path, name, genres, resized, split_dir, interim)


def _load_rows(
    array_path: Path,
    name: str,
    genres: list[str],
    resized: Path | None,
    split_dir: Path | None,
    interim: Path | None,
    limit: int | None = None,
) -> Split:
    ids = ((split_dir or paths.split()) / f"{name}.txt").read_text(encoding="utf-8").split()[:limit]
    manifest = read_manifest(resized)
    row_of = {movie_id: row for row, movie_id in enumerate(manifest)}
    missing = [i for i in ids if i not in row_of]
    if missing:
        raise ValueError(
            f"{len(missing)} ids of split {name!r} are not in the resize manifest "
            f"(first: {missing[0]!r}); re-run `dvc repro`"
        )
    rows = np.array([row_of[i] for i in ids], dtype=np.int64)
    array = np.load(array_path, mmap_mode="r")
    if len(array) != len(manifest):
        raise ValueError(
            f"{array_path} has {len(array)} rows, the resize manifest {len(manifest)}; re-run `dvc repro`"
        )
    # Read the memory map in ascending row order (sequential I/O), then place rows in split order.
    order = np.argsort(rows, kind="stable")
    X = np.empty((len(rows), *array.shape[1:]), dtype=array.dtype)
    X[order] = array[rows[order]]
    labels = read_labels(interim)
    Y = label_matrix([labels[i] for i in ids], genres)
    return Split(ids=ids, X=X, Y=Y)

"""split: train/dev/test by iterative stratification (multi-label), seeded, with optional caps.

Outputs: `train.txt`, `dev.txt`, `test.txt` (one id per line, in manifest order) and
`split_report.json` (sizes and per-genre counts of each set).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from skmultilearn.model_selection import IterativeStratification

from postergenre.core.atomic import atomic_path, write_json

log = logging.getLogger(__name__)

SETS = ("train", "dev", "test")


def _stratified_folds(Y: np.ndarray, fractions: list[float], seed: int) -> list[np.ndarray]:
    """Partition rows of Y into len(fractions) folds by iterative stratification."""
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(Y))
    strat = IterativeStratification(
        n_splits=len(fractions), order=1, sample_distribution_per_fold=list(fractions), random_state=rng
    )
    # scikit-multilearn-ng returns fold positions in its own shuffled order without mapping them
    # back; we shuffle ourselves and switch its shuffle off so positions map through `order`.
    strat.need_shuffle = False
    strat.shuffle = False
    folds = [
        np.sort(order[np.asarray(test, dtype=np.int64)])
        for _, test in strat.split(np.zeros((len(Y), 1)), Y[order])
    ]
    return folds


def stratified_subset(Y: np.ndarray, size: int, seed: int) -> np.ndarray:
    """`size` row indices of Y keeping label proportions, as sorted indices."""
    if size >= len(Y):
        return np.arange(len(Y))
    share = size / len(Y)
    chosen, rest = _stratified_folds(Y, [share, 1 - share], seed)
    if len(chosen) > size:
        chosen = chosen[:size]
    elif len(chosen) < size:
        chosen = np.sort(np.concatenate([chosen, rest[: size - len(chosen)]]))
    return chosen


def split_indices(
    Y: np.ndarray, fractions: list[float], seed: int, caps: list[int] | None = None
) -> list[np.ndarray]:
    """Row indices of train, dev and test; a positive cap shrinks its set, stratified."""
    if len(Y) < len(fractions):
        raise ValueError(f"cannot split {len(Y)} movies into {len(fractions)} non-empty sets")
    folds = _stratified_folds(Y, fractions, seed)
    caps = caps or [0] * len(folds)
    return [
        fold[stratified_subset(Y[fold], cap, seed + i)] if cap else fold
        for i, (fold, cap) in enumerate(zip(folds, caps, strict=True))
    ]


def write_split(
    ids: list[str], Y: np.ndarray, genres: list[str], params: dict, seed: int, out_dir: str | Path
) -> dict:
    """Split the resized movies and write the id lists and a report."""
    fractions = [params[s] for s in SETS]
    caps = [params[f"max_{s}"] for s in SETS]
    parts = split_indices(Y, fractions, seed, caps)
    report: dict[str, Any] = {
        "sizes": {},
        "genre_counts": {},
        "fractions": dict(zip(SETS, fractions, strict=True)),
        "caps": dict(zip(SETS, caps, strict=True)),
        "n_movies": len(ids),
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        for name, idx in zip(SETS, parts, strict=True):
            (tmp / f"{name}.txt").write_text("".join(f"{ids[i]}\n" for i in idx), encoding="utf-8")
            report["sizes"][name] = int(len(idx))
            report["genre_counts"][name] = {g: int(c) for g, c in zip(genres, Y[idx].sum(0), strict=True)}
        write_json(tmp / "split_report.json", report)
    log.info("split: %s", report["sizes"])
    return report

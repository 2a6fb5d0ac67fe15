"""Bootstrap intervals over test posters, for every method on the same resamples.

A resample draws n of the n test posters with replacement; it is held as a count per poster
(how many times each was drawn), so a metric on every resample is a weighted metric over the one
set of posters, computed for all resamples at once (a matrix product for the F1s, one sort per
genre and cumulative sums for AP and ROC-AUC) instead of a loop over 1,000 copies. The counts
depend on the split's ids alone (`split_seed`): two methods scored on the same test split see
the same resamples, which is what makes their differences paired.

With every count 1 each function equals `core.metrics` (mAP and macro ROC-AUC over the genres
where they are defined; F1 with 0 for 0/0), and a resample's value is that metric on the
resampled posters (tests/test_metrics.py holds both).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from postergenre.core.metrics import _divide

RESAMPLES = 1000
LEVEL = 0.95
METRICS = ("mAP", "macro_roc_auc", "micro_f1", "macro_f1")  # scores' ranking, decisions' F1


def split_seed(ids: list[str]) -> int:
    """The resamples' seed, from the scored split's ids: every method on a split draws the same
    resamples, whatever the training seed (varied by `dvc exp run -S seed=...`)."""
    return int.from_bytes(hashlib.sha256("\n".join(ids).encode()).digest()[:8], "big")


def resample_counts(n: int, seed: int, resamples: int = RESAMPLES) -> np.ndarray:
    """(resamples, n) counts: row b is how often each poster is drawn in resample b."""
    rng = np.random.default_rng([seed, n, resamples])
    drawn = rng.integers(0, n, size=(resamples, n))
    flat = (np.arange(resamples)[:, None] * n + drawn).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def _per_genre_ranking(y: np.ndarray, p: np.ndarray, Wt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One genre's AP and ROC-AUC under each column of weights Wt (n, resamples; NaN where
    undefined): the positives and negatives counted at each distinct score, highest first, as
    `core.metrics._curve_counts` does for weights of 1. Posters run down the rows, so each
    cumulative sum runs over whole rows of resamples at once."""
    order = np.argsort(p, kind="stable")[::-1]
    s = p[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    w = Wt[order]
    alls = np.cumsum(w, axis=0)[ends]
    tps = np.cumsum(w * y[order, None], axis=0)[ends]
    fps = alls - tps
    positives, negatives = tps[-1], fps[-1]
    previous = np.vstack([np.zeros((1, w.shape[1])), tps[:-1]])
    ap = np.sum((tps - previous) * _divide(tps, alls), axis=0)
    ap = np.where(positives > 0, _divide(ap, positives), np.nan)
    fps_before = np.vstack([np.zeros((1, w.shape[1])), fps[:-1]])
    area = np.sum((fps - fps_before) * (previous + tps), axis=0) / 2.0
    auc = np.where((positives > 0) & (negatives > 0), _divide(area, positives * negatives), np.nan)
    return ap, auc


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Each row's mean over its finite entries (NaN for a row with none)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=1)
    count = finite.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def replicates(
    Y: np.ndarray, P: np.ndarray, decided: np.ndarray | None, W: np.ndarray
) -> dict[str, np.ndarray]:
    """Each metric of METRICS on every resample (a row of W): mAP and macro ROC-AUC of the
    scores P, micro- and macro-F1 of the decisions (left out where there are none)."""
    Y = Y.astype(bool)
    Wt = np.ascontiguousarray(W.T)
    ap = np.empty((len(W), Y.shape[1]))
    auc = np.empty_like(ap)
    for j in range(Y.shape[1]):
        ap[:, j], auc[:, j] = _per_genre_ranking(Y[:, j].astype(np.float64), P[:, j].astype(np.float64), Wt)
    out = {"mAP": _nanmean_rows(ap), "macro_roc_auc": _nanmean_rows(auc)}
    if decided is not None:
        D = decided.astype(bool)
        tp, predicted, true = W @ (D & Y), W @ D, W @ Y
        out["micro_f1"] = _divide(2.0 * tp.sum(axis=1), true.sum(axis=1) + predicted.sum(axis=1))
        out["macro_f1"] = _divide(2.0 * tp, true + predicted).mean(axis=1)
    return out


def interval(values: np.ndarray, level: float = LEVEL) -> list[float]:
    """The percentile interval of the resamples' values (the finite ones), rounded to 6 places."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.nanpercentile(values, [tail, 100.0 - tail])
    return [round(float(low), 6), round(float(high), 6)]


class Paired(NamedTuple):
    difference: list[float]  # the percentile interval of A - B
    a_higher: float  # the share of resamples where A is higher


def paired(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> Paired:
    """A against B on the same resamples."""
    diff = a - b
    keep = np.isfinite(diff)
    return Paired(interval(diff[keep], level), round(float(np.mean(diff[keep] > 0)), 4))


def verdict(difference: list[float]) -> str:
    """'higher', 'lower' (A against B) where the interval excludes 0, else 'not distinguishable'."""
    if difference[0] > 0:
        return "higher"
    if difference[1] < 0:
        return "lower"
    return "not distinguishable"

"""Every metric, in one place, computed from true labels and predicted label sets.

All inputs are 0/1 arrays [n_movies, n_genres]. Values are plain floats rounded to 6 places so
metrics files are byte-identical across repeated runs.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score


def _round(value: float) -> float:
    return round(float(value), 6)


def _check(Y: np.ndarray, Yhat: np.ndarray) -> None:
    if Y.shape != Yhat.shape:
        raise ValueError(f"labels {Y.shape} and predictions {Yhat.shape} differ in shape")
    if Y.ndim != 2:
        raise ValueError(f"expected 2D [movies, genres] arrays, got {Y.ndim}D")


def study_metrics(Y: np.ndarray, Yhat: np.ndarray) -> dict[str, float]:
    """The study's four: all-match, at-least-one-match, binary accuracy, Hamming loss."""
    _check(Y, Yhat)
    if len(Y) == 0:
        raise ValueError("no movies to evaluate (empty test split)")
    Y, Yhat = Y.astype(bool), Yhat.astype(bool)
    hamming = float(np.mean(Y != Yhat))
    return {
        "all_match": _round(np.mean(np.all(Y == Yhat, axis=1))),
        "at_least_one_match": _round(np.mean(np.any(Y & Yhat, axis=1))),
        "binary_accuracy": _round(1.0 - hamming),
        "hamming_loss": _round(hamming),
    }


def f1_metrics(Y: np.ndarray, Yhat: np.ndarray) -> dict[str, float]:
    """Micro, macro and samples F1; an empty prediction or label set scores 0, not an error."""
    _check(Y, Yhat)
    return {
        f"{avg}_f1": _round(f1_score(Y, Yhat, average=avg, zero_division=0))
        for avg in ("micro", "macro", "samples")
    }


def label_set_metrics(Y: np.ndarray, Yhat: np.ndarray) -> dict[str, float]:
    """Every metric that reads predicted label sets."""
    return {**study_metrics(Y, Yhat), **f1_metrics(Y, Yhat)}


def all_zeros(Y: np.ndarray) -> np.ndarray:
    """The predictor that never names a genre: the floor every number must be read against."""
    return np.zeros_like(Y)

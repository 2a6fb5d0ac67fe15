"""Every metric, in one place, computed from true labels and predicted label sets.

All inputs are 0/1 arrays [n_movies, n_genres]. Values are plain floats rounded to 6 places so
metrics files are byte-identical across repeated runs.

The F1, precision/recall, average-precision and ROC-AUC functions are scikit-learn's (1.9)
step for step, written here in numpy: the same counts divided and summed in the same order, so
the same floats (tests/test_metrics.py holds each equal to scikit-learn's on random labels and
tied scores). Importing `sklearn.metrics` takes about 2.2 s (scipy.stats and pandas with it), in
every stage process that scores a model; its per-call input checks cost about 3.5 ms, where
training scores dev mAP every epoch.
"""

from __future__ import annotations

from typing import SupportsFloat

import numpy as np


def _round(value: SupportsFloat) -> float:
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


def _divide(numerator, denominator) -> np.ndarray:
    """numerator / denominator in float64, 0 where the denominator is 0 (scikit-learn's
    `zero_division=0`)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _counts(Y: np.ndarray, Yhat: np.ndarray, axis: int):
    """True positives, predicted and true counts, per genre (axis 0) or per movie (axis 1)."""
    Y, Yhat = Y.astype(bool), Yhat.astype(bool)
    return (Y & Yhat).sum(axis=axis), Yhat.sum(axis=axis), Y.sum(axis=axis)


def f1_metrics(Y: np.ndarray, Yhat: np.ndarray) -> dict[str, float]:
    """Micro, macro and samples F1; an empty prediction or label set scores 0, not an error."""
    _check(Y, Yhat)
    tp, predicted, true = _counts(Y, Yhat, 0)
    per_movie = _counts(Y, Yhat, 1)
    return {
        "micro_f1": _round(_divide(2.0 * tp.sum(), true.sum() + predicted.sum())),
        "macro_f1": _round(np.mean(_divide(2.0 * tp, true + predicted))),
        "samples_f1": _round(np.mean(_divide(2.0 * per_movie[0], per_movie[2] + per_movie[1]))),
    }


def label_set_metrics(Y: np.ndarray, Yhat: np.ndarray) -> dict[str, float]:
    """Every metric that reads predicted label sets."""
    return {**study_metrics(Y, Yhat), **f1_metrics(Y, Yhat)}


def all_zeros(Y: np.ndarray) -> np.ndarray:
    """The predictor that never names a genre: the floor every number must be read against."""
    return np.zeros_like(Y)


def label_frequency(Y_train: np.ndarray) -> np.ndarray:
    """Each genre's share of training movies: the one training-frequency predictor, whose scores
    the random baseline flips coins with and the label-frequency predictor ranks genres by."""
    return Y_train.mean(axis=0).astype(float)


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else _round(v) for v in values]


def _mean_defined(values: np.ndarray) -> float | None:
    """The mean over the finite entries (the genres where a metric is defined), or None."""
    return _round(np.nanmean(values)) if np.isfinite(values).any() else None


def _curve_counts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives above each distinct score, highest score first."""
    order = np.argsort(p, kind="stable")[::-1]  # descending (ties in any order: read per tie)
    s, t = p[order], y[order].astype(np.float64)
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last movie of each distinct score
    tps = np.cumsum(t, dtype=np.float64)[ends]
    return tps, 1 + ends.astype(np.float64) - tps


def pr_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One genre's precision and recall at each distinct score, recall falling to a last (0, 1)
    point: scikit-learn's `precision_recall_curve` (a genre with a positive movie)."""
    tps, fps = _curve_counts(y, p)
    precision = np.concatenate([(tps / (tps + fps))[::-1], [1.0]])
    recall = np.concatenate([(tps / tps[-1])[::-1], [0.0]])
    return precision, recall


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """One genre's average precision: scikit-learn's `average_precision_score`."""
    precision, recall = pr_curve(y, p)
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """One genre's ROC-AUC (a genre with positive and negative movies): scikit-learn's
    `roc_auc_score`, the trapezoids under its ROC curve with the same collinear points dropped."""
    tps, fps = _curve_counts(y, p)
    if len(fps) > 2:
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps = tps[keep], fps[keep]
    tpr, fpr = np.r_[0.0, tps] / tps[-1], np.r_[0.0, fps] / fps[-1]
    return float(np.trapezoid(tpr, fpr))


def per_genre_ap(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Each genre's average precision; NaN for a genre with no positive movie in Y."""
    _check(Y, P)
    if not np.isfinite(P).all():
        raise ValueError("scores must be finite (NaN or infinity given)")
    ap = np.full(Y.shape[1], np.nan)
    for j in range(Y.shape[1]):
        if Y[:, j].any():
            ap[j] = average_precision(Y[:, j], P[:, j])
    return ap


def mean_average_precision(Y: np.ndarray, P: np.ndarray) -> float | None:
    """mAP over the genres where AP is defined, rounded as in the metrics files; None if none is."""
    return _mean_defined(per_genre_ap(Y, P))


def ranking_metrics(Y: np.ndarray, P: np.ndarray) -> dict:
    """mAP (macro average precision) and macro ROC-AUC over the genres where they are defined.

    A genre with no positive (or, for AUC, no negative) movie in Y has no AP / AUC: it is
    listed under `undefined_*`, and left out of the mean rather than counted as 0.
    """
    ap = per_genre_ap(Y, P)
    auc = np.full(Y.shape[1], np.nan)
    for j in range(Y.shape[1]):
        if 0 < int(Y[:, j].sum()) < len(Y):
            auc[j] = roc_auc(Y[:, j], P[:, j])
    return {
        "mAP": _mean_defined(ap),
        "macro_roc_auc": _mean_defined(auc),
        "per_genre_ap": _finite_or_none(ap),
        "per_genre_auc": _finite_or_none(auc),
        "undefined_ap": [int(j) for j in np.flatnonzero(~np.isfinite(ap))],
        "undefined_auc": [int(j) for j in np.flatnonzero(~np.isfinite(auc))],
    }


def bce_loss(Y: np.ndarray, P: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of the scores, the loss the study's networks minimised."""
    P = np.clip(P.astype(float), eps, 1 - eps)
    return _round(-np.mean(Y * np.log(P) + (1 - Y) * np.log(1 - P)))


def top_k_accuracy(Y: np.ndarray, P: np.ndarray, k: int) -> float:
    """Share of movies whose k highest-scored genres include at least one true genre."""
    top = np.argsort(-P, axis=1, kind="stable")[:, :k]
    return _round(np.mean(np.take_along_axis(Y, top, axis=1).any(axis=1)))


def per_genre(Y: np.ndarray, Yhat: np.ndarray, genres: list[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support of each genre (0 where undefined, as scikit-learn)."""
    _check(Y, Yhat)
    tp, predicted, s = _counts(Y, Yhat, 0)
    p, r, f = _divide(tp, predicted), _divide(tp, s), _divide(2.0 * tp, s + predicted)
    return {
        g: {"precision": _round(p[j]), "recall": _round(r[j]), "f1": _round(f[j]), "support": int(s[j])}
        for j, g in enumerate(genres)
    }


def tune_thresholds(Y: np.ndarray, P: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
    """Per-genre threshold maximising that genre's F1 on (Y, P), typically the dev split.

    A genre with no positive example keeps 0.5; ties go to the lowest threshold.
    """
    grid = np.linspace(0.02, 0.98, 49) if grid is None else np.asarray(grid)
    truth = Y.astype(bool)[:, :, None]
    predicted = P[:, :, None] >= grid[None, None, :]  # [n, genres, thresholds]
    tp = (predicted & truth).sum(axis=0)
    fp = (predicted & ~truth).sum(axis=0)
    fn = truth.sum(axis=0) - tp
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    thresholds = grid[np.argmax(f1, axis=1)].astype(float)
    thresholds[Y.sum(axis=0) == 0] = 0.5
    return thresholds


def score_metrics(Y: np.ndarray, P: np.ndarray) -> dict:
    """Every metric that reads scores rather than label sets."""
    return {
        "bce_loss": bce_loss(Y, P),
        "top1_accuracy": top_k_accuracy(Y, P, 1),
        "top3_accuracy": top_k_accuracy(Y, P, 3),
        **ranking_metrics(Y, P),
    }


def raised_thresholds(thresholds: np.ndarray, lift: float) -> np.ndarray:
    """Each genre's threshold raised by `lift` of the way to 1: the bar `apply_rule` holds a
    score to besides the top-k."""
    return thresholds + lift * (1.0 - thresholds)


def apply_rule(P: np.ndarray, thresholds: np.ndarray, top_k: int = 0, lift: float = 0.0) -> np.ndarray:
    """[n, n_genres] 0/1 label sets: each movie's `top_k` highest-scored genres, plus every genre
    at or above its threshold raised by `lift` of the way to 1 (lift 0: the tuned thresholds;
    lift 1: the top-k alone)."""
    out = P >= raised_thresholds(thresholds, lift)[None, :]
    if top_k > 0 and len(P):
        top = np.argsort(-P, axis=1, kind="stable")[:, :top_k]
        np.put_along_axis(out, top, True, axis=1)
    return out.astype(np.uint8)


TOP_KS = (0, 1, 2, 3)
LIFTS = tuple(round(float(x), 2) for x in np.linspace(0.0, 1.0, 11))


def tune_operating_point(
    Y: np.ndarray, P: np.ndarray, thresholds: np.ndarray, prior_micro_f1: float
) -> dict[str, float]:
    """The decision rule (`apply_rule`'s top_k and lift) chosen on (Y, P), the dev split: of the
    rules whose micro-F1 beats the label-frequency predictor's (`prior_micro_f1`, on the same
    movies), the one with the highest macro-F1; if none beats it, the highest micro-F1. Ties go
    to the simpler rule (fewer forced genres, lower lift)."""
    best: dict[str, float] = {}
    best_key = None
    for top_k in TOP_KS:
        for lift in LIFTS:
            f1 = f1_metrics(Y, apply_rule(P, thresholds, top_k, lift))
            beats = f1["micro_f1"] > prior_micro_f1
            key = (beats, f1["macro_f1"] if beats else f1["micro_f1"])
            if best_key is None or key > best_key:  # TOP_KS x LIFTS is never empty
                best_key = key
                best = {
                    "top_k": top_k,
                    "lift": lift,
                    "dev_micro_f1": f1["micro_f1"],
                    "dev_macro_f1": f1["macro_f1"],
                    "prior_dev_micro_f1": _round(prior_micro_f1),
                    "beats_prior_on_dev": bool(beats),
                }
    return best


def label_frequency_sets(Y_train: np.ndarray, n: int) -> np.ndarray:
    """ "Always the common genres": the r most frequent training genres for each of n movies (r =
    the training label cardinality, rounded)."""
    frequency = label_frequency(Y_train)
    r = max(1, int(round(Y_train.sum(axis=1).mean())))
    common = np.zeros((n, Y_train.shape[1]), dtype=np.uint8)
    common[:, np.argsort(-frequency, kind="stable")[:r]] = 1
    return common

"""evaluate: score a saved model on the test split, with trivial predictors beside it.

Writes, all git-tracked except the pictures and curves (DVC outputs):

- `metrics/<method>.json`, the headline (what `dvc exp show` and `dvc metrics diff` show): mAP,
  macro ROC-AUC, micro- and macro-F1 at the tuned thresholds, and the study's four at 0.5;
- `metrics/details/<method>.json`, every number: the study's metrics and the field's at 0.5, at
  the per-genre thresholds tuned on dev and at the operating point chosen on dev, the
  threshold-free scores, and the all-zeros and label-frequency predictors on the same posters;
  the same for the dev split (where every choice was made; an ensemble's out-of-fold);
- under `plots/<method>/`: per-genre numbers, F1 per genre at 0.5 and tuned, precision-recall
  curves (JSON for `dvc plots`, PNG for the report) and a gallery of test posters.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from postergenre.core import bootstrap, dataset, figures, paths
from postergenre.core.atomic import write_json, write_npz
from postergenre.core.metrics import (
    all_zeros,
    label_frequency,
    label_frequency_sets,
    label_set_metrics,
    per_genre,
    pr_curve,
    score_metrics,
)
from postergenre.methods import load_model
from postergenre.methods.params import method_settings
from postergenre.runtime import entry
from postergenre.runtime.registry import log_evaluation
from postergenre.runtime.tracking import flatten, folder_sha256, stage_run

GALLERY_SIZE = 8
# what write_plots writes into the plots folder (the train stage writes training.*)
PLOTS = ("per_genre.json", "f1.json", "f1.png", "pr_curves.json", "pr_curves.png", "gallery.png")
# The headline file's keys: (where in the details, key in the details)
HEADLINE = {
    "mAP": ("scores", "mAP"),
    "macro_roc_auc": ("scores", "macro_roc_auc"),
    "micro_f1": ("decided", "micro_f1"),
    "macro_f1": ("decided", "macro_f1"),
    "all_match": ("at_0.5", "all_match"),
    "at_least_one_match": ("at_0.5", "at_least_one_match"),
    "binary_accuracy": ("at_0.5", "binary_accuracy"),
    "hamming_loss": ("at_0.5", "hamming_loss"),
}


def headline(details: dict[str, Any]) -> dict[str, Any]:
    """The short file: the field's four (F1 at the tuned thresholds; the random baseline, which
    has none, at its own coin flips) and the study's four at 0.5."""
    results = details[details["split"]]
    out: dict[str, Any] = {}
    for key, (section, name) in HEADLINE.items():
        where = results.get(section) or results["at_0.5"]
        out[key] = where.get(name)
    out["n_train"] = details.get("n_train")  # the training split's posters (a learning curve's x)
    intervals = results.get("intervals", {})
    # numbers, not lists: `dvc exp show` and `dvc metrics diff` read only numbers
    out["ci95"] = {
        k: {"low": intervals[k][0], "high": intervals[k][1]} for k in bootstrap.METRICS if k in intervals
    }
    return out


def _scalars(d: dict) -> dict:
    """The summary numbers of score_metrics, without its per-genre lists."""
    return {k: v for k, v in d.items() if not isinstance(v, list)}


def trivial_predictors(Y: np.ndarray, Y_train: np.ndarray) -> dict[str, dict]:
    """All-zeros, and "always the common genres": the r most frequent training genres for every
    movie (r = the training label cardinality, rounded), scored by training frequency."""
    zeros = all_zeros(Y)
    freq_scores = np.tile(label_frequency(Y_train), (len(Y), 1))
    common = label_frequency_sets(Y_train, len(Y))
    r = int(common[0].sum()) if len(common) else 0
    return {
        "all_zeros": {**label_set_metrics(Y, zeros), **_scalars(score_metrics(Y, zeros))},
        "label_frequency": {
            **label_set_metrics(Y, common),
            **_scalars(score_metrics(Y, freq_scores)),
            "genres_predicted": r,
        },
    }


def resampled_metrics(
    Y: np.ndarray, P: np.ndarray, decisions: np.ndarray, Y_train: np.ndarray, seed: int
) -> dict[str, np.ndarray]:
    """The headline four on each bootstrap resample of the posters (core.bootstrap: the same
    resamples for every method on this split), for the method's scores and decisions (the
    operating point's; the random baseline's coin flips) and for the label-frequency predictor
    (`label_frequency.<metric>`), which the operating point is judged against."""
    W = bootstrap.resample_counts(len(Y), seed)
    out = bootstrap.replicates(Y, P, decisions, W)
    frequency = bootstrap.replicates(
        Y, np.tile(label_frequency(Y_train), (len(Y), 1)), label_frequency_sets(Y_train, len(Y)), W
    )
    out.update({f"label_frequency.{k}": v for k, v in frequency.items()})
    return out


def intervals(resampled: dict[str, np.ndarray]) -> dict[str, Any]:
    """The percentile intervals of the method's four (the details' `intervals` block)."""
    return {
        "level": bootstrap.LEVEL,
        "resamples": bootstrap.RESAMPLES,
        **{k: bootstrap.interval(resampled[k]) for k in bootstrap.METRICS},
        "label_frequency": {
            k: bootstrap.interval(resampled[f"label_frequency.{k}"]) for k in bootstrap.METRICS
        },
    }


def split_block(
    model, Y: np.ndarray, P: np.ndarray, Y_train: np.ndarray, scores: dict
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """One split's numbers: the threshold-free scores, the label sets at 0.5, at the tuned
    thresholds alone and at the operating point (what `predict` decides), and the trivial
    predictors on the same movies; with those three label sets (for the plots)."""
    at_half = model.decide(P, tuned=False)
    block: dict[str, Any] = {"at_0.5": label_set_metrics(Y, at_half), "scores": _scalars(scores)}
    tuned = decided = None
    if model.probabilistic:  # the random baseline's sets are coin flips, with nothing to tune
        tuned, decided = model.decide(P, rule=False), model.decide(P)
        block["tuned"] = label_set_metrics(Y, tuned)
        block["decided"] = {**label_set_metrics(Y, decided), **model.operating_point}
    block.update(trivial_predictors(Y, Y_train))
    return block, (at_half, tuned, decided)


def evaluate_model(
    model_dir: str | Path,
    out_path: str | Path,
    plots_dir: str | Path | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """Write the headline metrics JSON at `out_path`, every number in `paths.details_file(out_path)`
    with the bootstrap's intervals, the bootstrap's resampled values in
    `paths.bootstrap_file(out_path)` (and the plots); return the details."""
    model = load_model(model_dir)
    genres = dataset.read_genres()
    if model.genres != genres:
        raise ValueError(
            f"{model_dir} was trained on another genre vocabulary ({len(model.genres)} genres: "
            f"{', '.join(model.genres[:5])}...) than data/interim/genres.json ({len(genres)}: "
            f"{', '.join(genres[:5])}...); re-run its train stage"
        )
    data = model.inputs(split, genres)
    if len(data.ids) == 0:
        raise ValueError(f"the {split} split is empty: nothing to evaluate")
    Y = data.Y
    P = model.predict_proba(data.X)
    scores = score_metrics(Y, P)
    Y_train = dataset.load_labels("train", genres)
    results, (at_half, tuned, decided) = split_block(model, Y, P, Y_train, scores)
    started = time.perf_counter()
    seed = bootstrap.split_seed(list(data.ids))
    resampled = resampled_metrics(Y, P, decided if decided is not None else at_half, Y_train, seed)
    logging.getLogger(__name__).info(
        "evaluate-%s: bootstrap, %d resamples of %d posters, in %.2f s",
        model.method,
        bootstrap.RESAMPLES,
        len(Y),
        time.perf_counter() - started,
    )
    results["intervals"] = intervals(resampled)
    dev_block = None
    if split != "dev":  # the split every choice was made on, beside the one reported
        dev = model.inputs("dev", genres)
        P_dev = model.dev_scores_for_tuning(dev.X)  # an ensemble's: out-of-fold
        dev_block, _ = split_block(model, dev.Y, P_dev, Y_train, score_metrics(dev.Y, P_dev))
    result = {
        "method": model.method,
        "split": split,
        f"n_{split}": len(data.ids),
        "n_train": len(Y_train),
        "n_genres": len(genres),
        # AP / AUC are undefined for a genre with no positive (or no negative) test poster:
        # named here and left out of mAP / macro ROC-AUC, not counted as 0.
        "undefined_ap": [genres[j] for j in scores["undefined_ap"]],
        "undefined_auc": [genres[j] for j in scores["undefined_auc"]],
        split: results,
        **({"dev": dev_block} if dev_block else {}),
        # where the numbers come from: the model's training data and the posters scored here
        "data": {
            "trained_on": model.trained_on,
            f"{split}_sha256": dataset.content_sha256(np.asarray(data.ids), data.X, Y),
        },
    }
    write_npz(paths.bootstrap_file(out_path), resampled)
    write_json(paths.details_file(out_path), result)
    write_json(out_path, headline(result))
    if plots_dir is not None:
        write_plots(Path(plots_dir), Scored(model, split, data.ids, Y, P, at_half, tuned, decided, scores))
    return result


@dataclass
class Scored:
    """A model's scores and label sets on one split: what the plots draw."""

    model: Any
    split: str
    ids: list[str]
    Y: np.ndarray  # true labels
    P: np.ndarray  # scores
    at_half: np.ndarray  # label sets at 0.5 (the baseline's coin flips)
    tuned: np.ndarray | None  # label sets at the tuned thresholds
    decided: np.ndarray | None  # label sets by the operating point (what `predict` names)
    scores: dict  # score_metrics(Y, P), per-genre AP / AUC included


def write_plots(folder: Path, s: Scored) -> None:
    """Per-genre numbers, F1 bars, PR curves (JSON for `dvc plots`, PNG for the report), and
    the poster gallery."""
    genres, Y, P, model, scores, tuned = s.model.genres, s.Y, s.P, s.model, s.scores, s.tuned
    half = per_genre(Y, s.at_half, genres)
    tuned_pg = per_genre(Y, tuned, genres) if tuned is not None else None
    rows = []
    for j, g in enumerate(genres):
        rows.append(
            {
                "genre": g,
                **half[g],
                "f1_tuned": tuned_pg[g]["f1"] if tuned_pg else None,
                "threshold": round(float(model.thresholds[j]), 4),
                "ap": scores["per_genre_ap"][j],
                "roc_auc": scores["per_genre_auc"][j],
            }
        )
    write_json(folder / "per_genre.json", rows)
    f1 = [{"genre": g, "threshold": "0.5", "f1": half[g]["f1"]} for g in genres]
    if tuned_pg:
        f1 += [{"genre": g, "threshold": "tuned", "f1": tuned_pg[g]["f1"]} for g in genres]
    write_json(folder / "f1.json", f1)
    what = f"{model.method}, {s.split} split ({len(Y)} posters)"
    figures.f1_bars_png(folder / "f1.png", f1, genres, f"F1 per genre: {what}")
    curves = []
    for j, g in enumerate(genres):
        if Y[:, j].sum() == 0:
            continue
        precision, recall = pr_curve(Y[:, j], P[:, j])
        keep = np.unique(np.linspace(0, len(recall) - 1, min(len(recall), 50)).astype(int))
        curves += [
            {"genre": g, "recall": round(float(recall[i]), 4), "precision": round(float(precision[i]), 4)}
            for i in keep
        ]
    write_json(folder / "pr_curves.json", curves)
    figures.pr_curves_png(
        folder / "pr_curves.png",
        curves,
        genres,
        scores["per_genre_ap"],
        [float(v) for v in Y.mean(axis=0)],
        f"Precision-recall per genre: {what}",
    )
    shown = s.decided if s.decided is not None else s.at_half
    # the posters themselves, whatever the model read (features are no picture)
    posters = dataset.load_split(s.split, model.size, genres, limit=GALLERY_SIZE).X
    titles = dataset.read_titles()
    ids = s.ids[:GALLERY_SIZE]
    figures.gallery_png(
        folder / "gallery.png",
        posters,
        [titles.get(i, f"id {i}") for i in ids],
        genres,
        Y[:GALLERY_SIZE],
        shown[:GALLERY_SIZE],
        P[:GALLERY_SIZE],
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    entry.add_method_argument(parser)
    parser.add_argument("--model", default=None, help="model folder (default models/METHOD)")
    parser.add_argument("--out", default=None, help="metrics JSON (default metrics/METHOD.json)")
    parser.add_argument("--plots", default=None, help="plots folder (default plots/METHOD)")
    entry.add_data_option(parser)
    entry.add_params_option(parser)


# the blocks of each split's metrics attached to the logged model: the scores' ranking metrics,
# the operating point's decisions and the plain 0.5 threshold (not the trivial predictors')
MODEL_BLOCKS = ("scores", "decided", "at_0.5")


def model_metrics(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{split: {"scores.mAP": ..., "decided.micro_f1": ..., ...}} for dev and test."""
    return {
        split: {
            k: float(v)
            for k, v in flatten({b: result[split][b] for b in MODEL_BLOCKS if b in result[split]}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        for split in ("dev", "test")
    }


def run(args: argparse.Namespace, params: dict) -> None:
    paths.use_data(args.data)
    method = args.method
    _, _, reads = method_settings(params, method)
    model = Path(args.model or paths.model_dir(method))
    out = Path(args.out or paths.metrics_file(method))
    plots = Path(args.plots or paths.plots_dir(method))
    with stage_run(f"evaluate-{method}", reads) as mlrun:
        result = evaluate_model(model, out, plots)
        mlrun.log_metrics(result)
        model_sha = folder_sha256(model)
        mlrun.set_tags(
            {
                "model_sha256": model_sha,
                "data_sha256": result["data"]["trained_on"].get("sha256", "unknown"),
                "test_sha256": result["data"]["test_sha256"],
            }
        )
        mlrun.link_to_training(f"train-{method}", model_sha)
        log_evaluation(model_sha, mlrun.run_id, model_metrics(result))
        mlrun.log_artifacts([out], "metrics")
        mlrun.log_artifacts([paths.details_file(out)], "metrics/details")
        mlrun.log_artifacts([plots / name for name in PLOTS], "plots")
    logging.getLogger(__name__).info(
        "evaluate-%s: %s",
        method,
        {k: v for k, v in result["test"]["at_0.5"].items() if k in ("at_least_one_match", "micro_f1")},
    )


if __name__ == "__main__":
    sys.exit(entry.main("evaluate", __doc__, add_arguments, run))

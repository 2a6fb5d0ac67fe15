"""evaluate: score a saved model on the test split, with trivial predictors beside it.

Writes `metrics/<method>.json` (git-tracked scalars: the study's metrics and the field's, at the
study's 0.5 threshold and at per-genre thresholds tuned on dev; the all-zeros and
label-frequency predictors on the same posters) and, under `plots/<method>/`, per-genre numbers,
precision-recall curves and a gallery of test posters with their true and predicted genres.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from postergenre import dataset, entry
from postergenre.atomic import atomic_path, write_json

GALLERY_SIZE = 8


def _scalars(d: dict) -> dict:
    """The summary numbers of score_metrics, without its per-genre lists."""
    return {k: v for k, v in d.items() if not isinstance(v, list)}


def trivial_predictors(Y: np.ndarray, Y_train: np.ndarray) -> dict[str, dict]:
    """All-zeros, and "always the common genres": the r most frequent training genres for every
    movie (r = the training label cardinality, rounded), scored by training frequency."""
    from postergenre.metrics import all_zeros, label_frequency, label_set_metrics, score_metrics

    zeros = all_zeros(Y)
    frequency = label_frequency(Y_train)
    freq_scores = np.tile(frequency, (len(Y), 1))
    r = max(1, int(round(Y_train.sum(axis=1).mean())))
    common = np.zeros_like(Y)
    common[:, np.argsort(-frequency, kind="stable")[:r]] = 1
    return {
        "all_zeros": {**label_set_metrics(Y, zeros), **_scalars(score_metrics(Y, zeros))},
        "label_frequency": {**label_set_metrics(Y, common),
                            **_scalars(score_metrics(Y, freq_scores)),
                            "genres_predicted": r},
    }


def evaluate_model(model_dir: str | Path, out_path: str | Path, plots_dir: str | Path | None = None,
                   split: str = "test") -> dict[str, Any]:
    """Write the metrics JSON (and plots) for the model in `model_dir`; return the metrics."""
    from postergenre.methods import load_model
    from postergenre.metrics import label_set_metrics, score_metrics

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
    at_half = model.decide(P, tuned=False)
    scores = score_metrics(Y, P)
    results: dict[str, Any] = {"at_0.5": label_set_metrics(Y, at_half), "scores": _scalars(scores)}
    tuned = None
    if model.probabilistic:  # the random baseline's sets are coin flips, with nothing to tune
        tuned = model.decide(P)
        results["tuned"] = label_set_metrics(Y, tuned)
    Y_train = dataset.load_labels("train", genres)
    results.update(trivial_predictors(Y, Y_train))
    result = {
        "method": model.method,
        "split": split,
        f"n_{split}": len(data.ids),
        "n_genres": len(genres),
        # AP / AUC are undefined for a genre with no positive (or no negative) test poster:
        # named here and left out of mAP / macro ROC-AUC, not counted as 0.
        "undefined_ap": [genres[j] for j in scores["undefined_ap"]],
        "undefined_auc": [genres[j] for j in scores["undefined_auc"]],
        split: results,
    }
    write_json(out_path, result)
    if plots_dir is not None:
        write_plots(Path(plots_dir), Scored(model, split, data.ids, Y, P, at_half, tuned, scores))
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
    scores: dict  # score_metrics(Y, P), per-genre AP / AUC included


def write_plots(folder: Path, s: Scored) -> None:
    """Per-genre numbers (for `dvc plots` bars), PR curves, and the poster gallery."""
    from sklearn.metrics import precision_recall_curve

    from postergenre.metrics import per_genre

    genres, Y, P, model, scores, tuned = s.model.genres, s.Y, s.P, s.model, s.scores, s.tuned
    half = per_genre(Y, s.at_half, genres)
    tuned_pg = per_genre(Y, tuned, genres) if tuned is not None else None
    rows = []
    for j, g in enumerate(genres):
        rows.append({"genre": g, **half[g],
                     "f1_tuned": tuned_pg[g]["f1"] if tuned_pg else None,
                     "threshold": round(float(model.thresholds[j]), 4),
                     "ap": scores["per_genre_ap"][j], "roc_auc": scores["per_genre_auc"][j]})
    write_json(folder / "per_genre.json", rows)
    curves = []
    for j, g in enumerate(genres):
        if Y[:, j].sum() == 0:
            continue
        precision, recall, _ = precision_recall_curve(Y[:, j], P[:, j])
        keep = np.unique(np.linspace(0, len(recall) - 1, min(len(recall), 50)).astype(int))
        curves += [{"genre": g, "recall": round(float(recall[i]), 4),
                    "precision": round(float(precision[i]), 4)} for i in keep]
    write_json(folder / "pr_curves.json", curves)
    shown = tuned if tuned is not None else s.at_half
    # the posters themselves, whatever the model read (features are no picture)
    posters = dataset.load_split(s.split, model.size, genres, limit=GALLERY_SIZE).X
    write_gallery(folder / "gallery.png", posters, genres, Y[:GALLERY_SIZE],
                  shown[:GALLERY_SIZE], P[:GALLERY_SIZE], s.ids[:GALLERY_SIZE])


def write_gallery(path: Path, posters: np.ndarray, genres: list[str], Y: np.ndarray,
                  Yhat: np.ndarray, P: np.ndarray, ids: list[str], height: int = 180) -> None:
    """Posters side by side, each with its true genres and the predicted ones (with scores)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    cell_w, text_h = 150, 120
    sheet = Image.new("RGB", (cell_w * max(1, len(posters)), height + text_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, poster in enumerate(posters):
        # Shown at the posters' 2:3 aspect, whatever size the model read (224x224 is squashed).
        image = Image.fromarray(poster).resize((height * 2 // 3, height), Image.BILINEAR)
        sheet.paste(image, (i * cell_w + (cell_w - image.width) // 2, 0))
        true = [genres[j] for j in np.flatnonzero(Y[i])]
        pred = [f"{genres[j]} {P[i, j]:.2f}" for j in np.flatnonzero(Yhat[i])]
        lines = [f"id {ids[i]}", "true:"] + [f" {g}" for g in true[:3]] + ["predicted:"] + \
                [f" {g}" for g in pred[:3]] + ([] if pred else [" (none)"])
        y = height + 4
        for line in lines:
            hit = line.strip().rsplit(" ", 1)[0] in true
            colour = (0, 120, 0) if line.startswith(" ") and hit else (0, 0, 0)
            draw.text((i * cell_w + 4, y), line[:24], fill=colour, font=font)
            y += 12
    with atomic_path(path) as tmp:
        sheet.save(tmp, "PNG")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("method", help="a method with a section in params.yaml")
    parser.add_argument("--model", default=None, help="model folder (default models/METHOD)")
    parser.add_argument("--out", default=None, help="metrics JSON (default metrics/METHOD.json)")
    parser.add_argument("--plots", default=None, help="plots folder (default plots/METHOD)")
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    import logging

    from postergenre.params import method_settings
    from postergenre.tracking import stage_run

    method = args.method
    _, _, reads = method_settings(params, method)
    with stage_run(f"evaluate-{method}", reads) as mlrun:
        result = evaluate_model(args.model or f"models/{method}", args.out or f"metrics/{method}.json",
                                args.plots or f"plots/{method}")
        mlrun.log_metrics(result)
    logging.getLogger(__name__).info(
        "evaluate-%s: %s", method, {k: v for k, v in result["test"]["at_0.5"].items()
                                    if k in ("at_least_one_match", "micro_f1")})


if __name__ == "__main__":
    sys.exit(entry.main("evaluate", __doc__, add_arguments, run))

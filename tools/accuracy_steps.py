"""What each accuracy step adds: the head on growing sets of backbones and views, then the
pipeline's ensemble, each on the dev split and the test split.

Run inside a repository whose pipeline ran with every backbone and view the steps use (the
movielens experiment applied, see docs/results.md):

    python tools/accuracy_steps.py --out reports/movielens-steps.md

Every head here is the pipeline's `head` method (its params from params.yaml) trained by the same
code on the cached features of the backbones and views the step names; its thresholds and
operating point are tuned on dev as the train stage does. The ensemble rows are read from the
pipeline's own `metrics/details/ensemble.json` (its dev numbers are out-of-fold).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from postergenre.core import dataset
from postergenre.runtime import entry

log = logging.getLogger("accuracy_steps")
LITE0, LITE1, LITE2 = "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"
ALL_VIEWS = ["squash", "aspect", "top", "bottom", "flip"]
# (label, backbones, views, pool)
STEPS = [
    ("Lite0, squash (the pipeline's default)", [LITE0], ["squash"], "concat"),
    ("Lite0, squash + flip, concat", [LITE0], ["squash", "flip"], "concat"),
    ("Lite0, 5 views, concat", [LITE0], ALL_VIEWS, "concat"),
    ("Lite0, 5 views, mean", [LITE0], ALL_VIEWS, "mean"),
    ("Lite0+1+2, squash", [LITE0, LITE1, LITE2], ["squash"], "concat"),
]  # then the pipeline's own head (the movielens experiment: every backbone and view, mean)
COLUMNS = ["mAP", "macro_roc_auc", "macro_f1_tuned", "micro_f1_op", "macro_f1_op"]


def pick(block: dict) -> dict[str, float]:
    """The five numbers of a step from one split's block of the evaluate stage's details."""
    return {
        "mAP": block["scores"]["mAP"],
        "macro_roc_auc": block["scores"]["macro_roc_auc"],
        "macro_f1_tuned": block["tuned"]["macro_f1"],
        "micro_f1_op": block["decided"]["micro_f1"],
        "macro_f1_op": block["decided"]["macro_f1"],
    }


def numbers(Y: np.ndarray, P: np.ndarray, model, Y_train: np.ndarray) -> dict[str, float]:
    """What the evaluate stage would report for these scores (its own `split_block`)."""
    from postergenre.core.metrics import score_metrics
    from postergenre.pipeline.evaluate import split_block

    return pick(split_block(model, Y, P, Y_train, score_metrics(Y, P))[0])


def head_step(params: dict, backbones, views, pool) -> dict:
    from postergenre.methods.head import FeatureHead
    from postergenre.methods.params import method_settings

    kwargs, size, _ = method_settings(params, "head")
    kwargs.update(backbones=backbones, views=views, pool=pool)
    genres = dataset.read_genres()
    model = FeatureHead(genres, size, params["seed"], **kwargs)
    train, dev, test = (model.inputs(s, genres, training=True) for s in ("train", "dev", "test"))
    start = time.perf_counter()
    model.fit(train.X, train.Y, dev=(dev.X, dev.Y))
    P_dev = model.predict_proba(dev.X)
    model.tune_thresholds(dev.Y, P_dev, train.Y)
    return {
        "dev": numbers(dev.Y, P_dev, model, train.Y),
        "test": numbers(test.Y, model.predict_proba(test.X), model, train.Y),
        "dim": int(train.X.shape[1]),
        "seconds": round(time.perf_counter() - start, 1),
        "operating_point": model.operating_point,
    }


def pipeline_row(method: str) -> dict | None:
    path = Path("metrics/details") / f"{method}.json"
    if not path.is_file():
        return None
    d = json.loads(path.read_text())
    return {
        "dev": pick(d["dev"]),
        "test": pick(d["test"]),
        "operating_point": {k: d["test"]["decided"][k] for k in ("top_k", "lift")},
    }


def table(rows: list[tuple[str, dict]]) -> list[str]:
    head = (
        "| step | "
        + " | ".join(f"dev {c}" for c in COLUMNS)
        + " | "
        + " | ".join(f"test {c}" for c in COLUMNS)
        + " | op. (k, lift) |"
    )
    lines = [head, "|" + "---|" * (2 * len(COLUMNS) + 2)]
    for label, r in rows:
        cells = [f"{r[s][c]:.4f}" for s in ("dev", "test") for c in COLUMNS]
        op = r["operating_point"]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {op['top_k']}, {op['lift']} |")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="reports/movielens-steps.md", help="the markdown table")
    parser.add_argument("--json", default=None, help="also write every number here")
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    rows = []
    for label, backbones, views, pool in STEPS:
        log.info("step: %s", label)
        r = head_step(params, backbones, views, pool)
        log.info(
            "step: %s -> dev %s, test %s (%d features, %.0f s)",
            label,
            r["dev"],
            r["test"],
            r["dim"],
            r["seconds"],
        )
        rows.append((f"head: {label}", r))
    for method, label in (
        ("custom", "custom CNN (study)"),
        ("mlknn_features", "ML-kNN on the pipeline's features"),
        ("head", "head in the pipeline (its embed settings)"),
        ("ensemble", "ensemble in the pipeline (dev: out-of-fold)"),
    ):
        r = pipeline_row(method)
        if r is not None:
            rows.append((label, r))
    e = params["embed"]
    lines = [
        "# What each accuracy step adds (movielens)",
        "",
        "Written by `python tools/accuracy_steps.py`. Dev: the split everything is chosen on; "
        "test: the report's split. macro-F1 (tuned): per-genre thresholds; op.: the operating "
        "point (top-k plus raised thresholds) chosen on dev. Pipeline settings: backbones "
        f"{', '.join(e['backbones'])}; views {', '.join(e['views'])}; pool {e['pool']}; "
        f"embed.size {e['size']}.",
        "",
        *table(rows),
        "",
    ]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    log.info("steps: %s", args.out)


if __name__ == "__main__":
    sys.exit(entry.main("accuracy_steps", __doc__, add_arguments, run))

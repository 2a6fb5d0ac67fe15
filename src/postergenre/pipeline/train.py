"""train: fit one method on the train split, tune its thresholds on dev, save the model folder.

The stage runs `python -m postergenre.pipeline.train METHOD` (also `postergenre train METHOD`). Under
`torchrun` every rank trains (the torch methods shard the data) and rank 0 alone saves and logs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from postergenre.core import dataset, figures, paths
from postergenre.core.atomic import write_json
from postergenre.core.images import draft_size
from postergenre.core.sizes import parse_size
from postergenre.methods import estimator_class
from postergenre.methods.params import method_settings
from postergenre.runtime import entry
from postergenre.runtime.registry import log_trained_model
from postergenre.runtime.tracking import folder_sha256, stage_run

log = logging.getLogger(__name__)


def preprocess_settings(params: dict) -> dict[str, Any]:
    """How the resize stage decoded posters, for `predict` to do the same to new ones."""
    return {
        "draft": list(draft_size([parse_size(s) for s in params["resize"]["sizes"]])),
        "max_pixels": params["resize"]["max_pixels"],
    }


def train_model(
    params: dict,
    method: str,
    out_dir: str | Path,
    plots_dir: str | Path,
    run=None,
    checkpoints: Path | None = None,
) -> dict[str, Any] | None:
    """Fit, tune per-genre thresholds on dev, save; return a summary (counts and the training
    data's hash; None on a rank > 0)."""
    kwargs, size, _ = method_settings(params, method)
    genres = dataset.read_genres()
    model = estimator_class(method)(genres, size, params["seed"], **kwargs)
    dev = model.inputs("dev", genres, training=True)
    # what it learns from: the training split, or dev alone (then no training inputs are made)
    train = dev if model.fits_on == "dev" else model.inputs("train", genres, training=True)
    Y_train = dataset.load_labels("train", genres)  # the label-frequency bar of the operating point
    on_epoch = (lambda rec: run.log_metrics(rec, step=int(rec["epoch"]))) if run else None
    log.info(
        "train-%s: fitted on %d %s inputs (%d dev) of shape %s, %d genres",
        method,
        len(train.ids),
        model.fits_on,
        len(dev.ids),
        list(train.X.shape[1:]),
        len(genres),
    )
    model.fit(train.X, train.Y, dev=(dev.X, dev.Y), on_epoch=on_epoch, checkpoints=checkpoints)
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    # after a fine-tune the dev split is scored through the model's own backbone's features
    dev_now = dev if model.fits_on_prediction_inputs else model.inputs("dev", genres)
    model.tune_thresholds(dev_now.Y, model.dev_scores_for_tuning(dev_now.X), Y_train)
    if model.probabilistic:
        log.info("train-%s: operating point on dev: %s", method, model.operating_point)
    model.preprocess = preprocess_settings(params)
    model.trained_on = {
        "source": params["data"]["source"],
        "path": params["data"]["path"],
        "posters": len(train.ids),
        "dev_posters": len(dev.ids),
        **({"split": "dev"} if model.fits_on == "dev" else {}),
        "sha256": dataset.content_sha256(np.asarray(train.ids), train.X, train.Y),
    }
    model.save(out_dir)
    # every method writes both (dvc.yaml's foreach lists them for all): no rows where it fits in
    # one pass
    rows = training_rows(getattr(model, "history", []))
    write_json(Path(plots_dir) / "training.json", rows)
    figures.training_png(
        Path(plots_dir) / "training.png",
        rows,
        f"{method}: loss per epoch ({len(train.ids)} training posters)"
        if rows
        else f"{method} ({len(train.ids)} training posters)",
    )
    return {"n_train": len(train.ids), "n_dev": len(dev.ids), "data_sha256": model.trained_on["sha256"]}


LOOP_KEYS = {"epoch", "train_loss", "train_loss_quarters", "dev_loss", "dev_mAP"}


def training_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training plot's points: train loss at each quarter epoch, dev loss at each epoch's end
    (and before training, epoch 0, where it was scored); one curve pair per setting a method
    sweeps (a candidate weight decay, the fine-tune)."""
    rows = []
    for rec in history:
        tag = ", ".join(
            k if v is True else f"{k} {v:g}" if isinstance(v, int | float) else f"{k} {v}"
            for k, v in rec.items()
            if k not in LOOP_KEYS
        )
        suffix = f" ({tag})" if tag else ""
        epoch = rec["epoch"]
        quarters = rec.get("train_loss_quarters") or ([rec["train_loss"]] if "train_loss" in rec else [])
        for q, loss in enumerate(quarters, 1):
            rows.append(
                {"epoch": round(epoch - 1 + q / len(quarters), 4), "loss": loss, "curve": f"train{suffix}"}
            )
        if "dev_loss" in rec:
            rows.append({"epoch": epoch, "loss": rec["dev_loss"], "curve": f"dev{suffix}"})
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    entry.add_method_argument(parser)
    parser.add_argument("--out", default=None, help="model folder (default models/METHOD)")
    parser.add_argument("--plots", default=None, help="plots folder (default plots/METHOD)")
    entry.add_data_option(parser)
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    paths.use_data(args.data)
    out = args.out or paths.model_dir(args.method)
    plots = args.plots or paths.plots_dir(args.method)
    _, _, reads = method_settings(params, args.method)
    checkpoints = paths.CHECKPOINTS / args.method
    main_rank = int(os.environ.get("RANK", "0")) == 0
    with stage_run(f"train-{args.method}", reads) if main_rank else contextlib.nullcontext() as mlrun:
        summary = train_model(params, args.method, out, plots, mlrun, checkpoints)
        if mlrun is not None and summary is not None:  # rank 0's run and summary
            mlrun.log_metrics(summary)  # the counts (log_metrics keeps numbers only)
            mlrun.set_tags({"data_sha256": summary["data_sha256"], "model_sha256": folder_sha256(out)})
            mlrun.log_artifacts([Path(out) / "model.json"], "model")
            mlrun.log_artifacts([Path(plots) / "training.json", Path(plots) / "training.png"], "plots")
            mlrun.set_tags(log_trained_model(args.method, out, mlrun.run_id))
    if main_rank:
        shutil.rmtree(checkpoints, ignore_errors=True)  # the model is saved: nothing to resume
        with contextlib.suppress(OSError):  # and .checkpoints/ itself, once empty
            checkpoints.parent.rmdir()
        log.info("train-%s: saved to %s", args.method, out)


if __name__ == "__main__":
    sys.exit(entry.main("train", __doc__, add_arguments, run))

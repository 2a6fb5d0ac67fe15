"""train: fit one method on the train split, tune its thresholds on dev, save the model folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from postergenre import dataset
from postergenre.atomic import write_json
from postergenre.methods import estimator_class
from postergenre.metrics import tune_thresholds

log = logging.getLogger(__name__)


def method_settings(params: dict, method: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A method's constructor arguments, its image size, and every param it reads (to log)."""
    from postergenre.params import ParamsError

    if method not in params["methods"]:
        raise ParamsError(f"no section methods.{method} in params.yaml; "
                          f"methods there: {', '.join(params['methods'])}")
    section = dict(params["methods"][method])
    uses = section.pop("uses")
    size = section.pop("size")
    if uses != "seed":
        section[uses] = params[uses]
    reads = {"seed": params["seed"], uses: params[uses], f"methods.{method}": params["methods"][method]}
    return section, size, reads


def preprocess_settings(params: dict) -> dict[str, Any]:
    """How the resize stage decoded posters, for `predict` to do the same to new ones."""
    from postergenre.images import draft_size
    from postergenre.params import parse_size

    return {"draft": list(draft_size([parse_size(s) for s in params["resize"]["sizes"]])),
            "max_pixels": params["resize"]["max_pixels"]}


def train_model(params: dict, method: str, out_dir: str | Path, plots_dir: str | Path,
                run=None) -> dict[str, Any]:
    """Fit, tune per-genre thresholds on dev (probabilistic methods), save; return a summary."""
    kwargs, size, _ = method_settings(params, method)
    genres = dataset.read_genres()
    train = dataset.load_split("train", size, genres)
    dev = dataset.load_split("dev", size, genres)
    model = estimator_class(method)(genres, size, params["seed"], **kwargs)
    on_epoch = (lambda rec: run.log_metrics(rec, step=int(rec["epoch"]))) if run else None
    log.info("train@%s: %d posters at %s, %d genres", method, len(train.ids), size, len(genres))
    model.fit(train.X, train.Y, dev=(dev.X, dev.Y), on_epoch=on_epoch)
    if model.probabilistic and len(dev.ids):
        model.thresholds = tune_thresholds(dev.Y, model.predict_proba(dev.X))
    model.preprocess = preprocess_settings(params)
    model.save(out_dir)
    write_json(Path(plots_dir) / "training.json", getattr(model, "history", []))
    return {"n_train": len(train.ids), "n_dev": len(dev.ids)}

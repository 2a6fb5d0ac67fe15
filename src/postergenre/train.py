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


def all_methods(params: dict) -> dict[str, dict]:
    """Every method section, pixel methods first, then those on backbone features."""
    from postergenre.params import METHOD_GROUPS

    return {name: section for group in METHOD_GROUPS for name, section in params[group].items()}


def method_settings(params: dict, method: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A method's constructor arguments, its image size, and every param it reads (to log)."""
    from postergenre.params import METHOD_GROUPS, ParamsError

    group = next((g for g in METHOD_GROUPS if method in params[g]), None)
    if group is None:
        raise ParamsError(f"no section methods.{method} or feature_methods.{method} in params.yaml; "
                          f"methods there: {', '.join(all_methods(params))}")
    section = dict(params[group][method])
    uses = section.pop("uses")
    reads = {"seed": params["seed"], uses: params[uses], f"{group}.{method}": params[group][method]}
    if group == "feature_methods":
        # Posters at the embed stage's size go through the embed stage's backbone.
        embed = params["embed"]
        size = embed["size"]
        section.update(backbone=embed["backbone"], embed_batch_size=embed["batch_size"])
        reads["embed"] = embed
    else:
        size = section.pop("size")
    if uses != "seed":
        section[uses] = params[uses]
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
    model = estimator_class(method)(genres, size, params["seed"], **kwargs)
    if model.input == "features" and not model.needs_posters:
        mismatch = dataset.cached_features_mismatch(model)  # checked before, not after, training
        if mismatch:
            raise ValueError(f"{mismatch}; re-run the embed stage")
        train = dataset.load_features("train", model.backbone_name, genres)
        dev = dataset.load_features("dev", model.backbone_name, genres)
        what = f"{model.backbone_name} features of posters at {size}"
    else:
        train = dataset.load_split("train", size, genres)
        dev = dataset.load_split("dev", size, genres)
        what = f"posters at {size}"
    on_epoch = (lambda rec: run.log_metrics(rec, step=int(rec["epoch"]))) if run else None
    log.info("train@%s: %d %s, %d genres", method, len(train.ids), what, len(genres))
    model.fit(train.X, train.Y, dev=(dev.X, dev.Y), on_epoch=on_epoch)
    if model.probabilistic and len(dev.ids):
        model.thresholds = tune_thresholds(dev.Y, model.predict_proba(dev.X))
    model.preprocess = preprocess_settings(params)
    model.save(out_dir)
    write_json(Path(plots_dir) / "training.json", getattr(model, "history", []))
    return {"n_train": len(train.ids), "n_dev": len(dev.ids)}

"""params.yaml: the one source of every knob, validated against a schema on load.

`dvc exp run -S key=value` silently adds keys it does not know, so a misspelt key must be an
error that names the key and the keys allowed where it stood, not a default quietly used.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

# Each leaf names the types it accepts; a dict is a section whose keys are fixed.
_NUM = (int, float)
SCHEMA: dict[str, Any] = {
    "seed": int,
    "k": int,
    "data": {
        "source": str,
        "path": str,
        "posters": str,
        "poster_key": str,
        "poster_ext": str,
        "synthetic": {"n": int, "width": int, "height": int, "noise": _NUM},
    },
    "clean": {"min_genre_count": int},
    "resize": {"sizes": list, "workers": int, "max_pixels": int},
    "embed": {"backbone": str, "size": str, "batch_size": int},
    "split": {
        "train": _NUM,
        "dev": _NUM,
        "test": _NUM,
        "max_train": int,
        "max_dev": int,
        "max_test": int,
    },
    "methods": {
        "baseline": {"size": str, "uses": str},
        "mlknn": {"size": str, "uses": str, "s": _NUM},
        "ovr": {"size": str, "uses": str},
        "custom": {"size": str, "uses": str, "epochs": int, "batch_size": int, "lr": _NUM,
                   "weight_decay": _NUM, "dropout": _NUM, "dense": int},
        "resnet34": {"size": str, "uses": str, "epochs": int, "batch_size": int, "lr": _NUM,
                     "weight_decay": _NUM, "weights": str},
    },
    "feature_methods": {
        "head": {"uses": str, "hidden": int, "dropout": _NUM, "loss": str, "weight_decay": list,
                 "epochs": int, "lr": _NUM, "batch_size": int, "oversample": bool,
                 "finetune_blocks": int, "finetune_epochs": int, "finetune_lr": _NUM},
        "mlknn_features": {"uses": str, "s": _NUM},
    },
}
# The groups of methods: on resized pixels, and on the embed stage's backbone features.
METHOD_GROUPS = ("methods", "feature_methods")

# Sections that may name only some of their keys: a method left out of `methods` is not run.
_SUBSET_ALLOWED = {"methods", "feature_methods"}
SOURCES = ("synthetic", "tmdb", "movielens", "csv")
POSTER_KEYS = ("poster_path", "imdb_id", "tmdb_id")
BACKBONES = ("efficientnet_lite0",)
LOSSES = ("bce", "weighted_bce", "asl")


class ParamsError(ValueError):
    """params.yaml is missing, malformed, or names a key or value it should not."""


def _check(node: Any, schema: Any, where: str) -> None:
    if isinstance(schema, dict):
        if not isinstance(node, dict):
            raise ParamsError(f"{where or 'params'}: expected a mapping, got {node!r}")
        for key, value in node.items():
            if key not in schema:
                allowed = ", ".join(sorted(schema))
                raise ParamsError(
                    f"unknown key '{where + '.' if where else ''}{key}' in params; "
                    f"allowed here: {allowed}"
                )
            _check(value, schema[key], f"{where}.{key}" if where else key)
        missing = sorted(set(schema) - set(node))
        if missing and where not in _SUBSET_ALLOWED:
            raise ParamsError(f"{where or 'params'}: missing key(s) {', '.join(missing)}")
        return
    types = schema if isinstance(schema, tuple) else (schema,)
    # bool is an int in Python; a `true` where a number belongs is still a mistake.
    if isinstance(node, bool) and bool not in types or not isinstance(node, types):
        names = " or ".join(t.__name__ for t in types)
        raise ParamsError(f"'{where}' must be {names}, got {node!r}")


def parse_size(text: str) -> tuple[int, int]:
    """'100x150' -> (width, height)."""
    try:
        w, h = (int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise ParamsError(
            f"image size must look like WIDTHxHEIGHT (e.g. 100x150), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ParamsError(f"image size must be positive, got {text!r}")
    return w, h


def validate(params: dict[str, Any]) -> dict[str, Any]:
    """Check keys, types and values; return the params unchanged if they are sound."""
    _check(params, SCHEMA, "")
    data = params["data"]
    if data["source"] not in SOURCES:
        raise ParamsError(f"data.source must be one of {', '.join(SOURCES)}, got {data['source']!r}")
    if data["poster_key"] not in POSTER_KEYS:
        raise ParamsError(
            f"data.poster_key must be one of {', '.join(POSTER_KEYS)}, got {data['poster_key']!r}"
        )
    if params["k"] < 1:
        raise ParamsError(f"k must be at least 1, got {params['k']}")
    if data["synthetic"]["n"] < 1:
        raise ParamsError("data.synthetic.n must be at least 1")
    if not params["resize"]["sizes"]:
        raise ParamsError("resize.sizes must name at least one size")
    for size in params["resize"]["sizes"]:
        parse_size(size)
    split = params["split"]
    fractions = [split["train"], split["dev"], split["test"]]
    if any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ParamsError(
            f"split.train + split.dev + split.test must be positive and sum to 1, got {fractions}")
    for name in ("max_train", "max_dev", "max_test"):
        if split[name] < 0:
            raise ParamsError(f"split.{name} must be 0 (no cap) or positive, got {split[name]}")
    embed = params["embed"]
    if embed["backbone"] not in BACKBONES:
        raise ParamsError(f"embed.backbone must be one of {', '.join(BACKBONES)}, got {embed['backbone']!r}")
    if embed["size"] not in params["resize"]["sizes"]:
        raise ParamsError(f"embed.size {embed['size']!r} is not one of resize.sizes "
                          f"{params['resize']['sizes']}")
    if embed["batch_size"] < 1:
        raise ParamsError(f"embed.batch_size must be at least 1, got {embed['batch_size']}")
    head = params["feature_methods"].get("head")
    if head is not None:
        if head["loss"] not in LOSSES:
            raise ParamsError(f"feature_methods.head.loss must be one of {', '.join(LOSSES)}, "
                              f"got {head['loss']!r}")
        if not head["weight_decay"] or not all(isinstance(w, _NUM) and not isinstance(w, bool)
                                               and w >= 0 for w in head["weight_decay"]):
            raise ParamsError("feature_methods.head.weight_decay must be a non-empty list of "
                              f"numbers >= 0 (candidates chosen on dev), got {head['weight_decay']!r}")
        if not 0 <= head["finetune_blocks"] <= 16:
            raise ParamsError("feature_methods.head.finetune_blocks must be 0 (off) to 16, "
                              f"got {head['finetune_blocks']}")
    if not params["methods"] and not params["feature_methods"]:
        raise ParamsError("no method to run: methods and feature_methods are both empty")
    for name, section in [*params["methods"].items(), *params["feature_methods"].items()]:
        if section.get("uses", "seed") not in ("seed", "k"):
            raise ParamsError(f"methods.{name}.uses must be 'seed' or 'k', got {section['uses']!r}")
        if "size" in section and section["size"] not in params["resize"]["sizes"]:
            raise ParamsError(
                f"methods.{name}.size {section['size']!r} is not one of resize.sizes "
                f"{params['resize']['sizes']}"
            )
    return params


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file (run from the repository root)")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    return validate(copy.deepcopy(params))


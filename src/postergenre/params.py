"""params.yaml: the one source of every knob, validated against a schema on load.

`dvc exp run -S key=value` silently adds keys it does not know, so a misspelt key must be an
error that names the key and the keys allowed where it stood, not a default quietly used.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from postergenre import sizes
from postergenre.methods import MethodSpec
from postergenre.methods import spec as method_spec
from postergenre.methods import specs as method_specs

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
    "embed": {"backbones": list, "views": list, "pool": str, "size": str, "batch_size": int,
              "threads": int},
    "training": {"threads": int},
    "split": {
        "train": _NUM,
        "dev": _NUM,
        "test": _NUM,
        "max_train": int,
        "max_dev": int,
        "max_test": int,
    },
    # methods / feature_methods: each method's section is checked against its module's SPEC
    # (postergenre.methods), one method per key.
    "methods": dict,
    "feature_methods": dict,
}
# The groups of methods: on resized pixels, and on the embed stage's backbone features.
METHOD_GROUPS = ("methods", "feature_methods")
SOURCES = ("synthetic", "tmdb", "movielens", "csv")
POSTER_KEYS = ("poster_path", "imdb_id", "tmdb_id")
# backbone.py's WHEELS names the same ones (a test holds them equal); listed here so that
# validating params never imports torch.
BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
VIEWS = ("squash", "aspect", "top", "bottom", "flip")
POOLS = ("concat", "mean")


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
        if missing:
            raise ParamsError(f"{where or 'params'}: missing key(s) {', '.join(missing)}")
        return
    types = schema if isinstance(schema, tuple) else (schema,)
    # bool is an int in Python; a `true` where a number belongs is still a mistake.
    if isinstance(node, bool) and bool not in types or not isinstance(node, types):
        names = " or ".join(t.__name__ for t in types)
        raise ParamsError(f"'{where}' must be {names}, got {node!r}")


def parse_size(text: str) -> tuple[int, int]:
    """'100x150' -> (width, height); a ParamsError if it is not a size."""
    try:
        return sizes.parse_size(text)
    except sizes.SizeError as exc:
        raise ParamsError(str(exc)) from None


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
    for key, known in (("backbones", BACKBONES), ("views", VIEWS)):
        chosen = embed[key]
        if not chosen or any(c not in known for c in chosen) or len(set(chosen)) != len(chosen):
            raise ParamsError(f"embed.{key} must list one or more of {', '.join(known)}, each "
                              f"once, got {chosen!r}")
    if embed["pool"] not in POOLS:
        raise ParamsError(f"embed.pool must be one of {', '.join(POOLS)}, got {embed['pool']!r}")
    if embed["size"] not in params["resize"]["sizes"]:
        raise ParamsError(f"embed.size {embed['size']!r} is not one of resize.sizes "
                          f"{params['resize']['sizes']}")
    if embed["threads"] < 1:
        raise ParamsError(f"embed.threads must be at least 1, got {embed['threads']}")
    if embed["batch_size"] < 1:
        raise ParamsError(f"embed.batch_size must be at least 1, got {embed['batch_size']}")
    if params["training"]["threads"] < 1:
        raise ParamsError(f"training.threads must be at least 1, got {params['training']['threads']}")
    if not params["methods"] and not params["feature_methods"]:
        raise ParamsError("no method to run: methods and feature_methods are both empty")
    for group in METHOD_GROUPS:
        for name, section in params[group].items():
            _check_method(params, group, name, section)
    for name, section in all_methods(params).items():  # an ensemble's members
        for member in (section or {}).get("members") or []:
            others = [m for m in all_methods(params) if m != name]
            if member not in others:
                raise ParamsError(f"{name}.members names {member!r}, which is not another method "
                                  f"of params.yaml ({', '.join(others)})")
    return params


def _value_error(where: str, kind: Any, value: Any) -> str | None:
    """Why `value` is not of the SPEC kind `kind` (see methods/__init__.py), or None."""
    if isinstance(kind, list):
        return None if value in kind else f"must be one of {', '.join(map(str, kind))}"
    if isinstance(kind, dict):
        problem = _value_error(where, kind["type"], value)
        if problem:
            return problem
        if not kind.get("min", value) <= value <= kind.get("max", value):
            return f"must be from {kind.get('min', '-inf')} to {kind.get('max', 'inf')}"
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    checks = {
        "int": (isinstance(value, int) and not isinstance(value, bool), "an integer"),
        "pos_int": (isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                    "an integer >= 1"),
        "nonneg_int": (isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                       "an integer >= 0"),
        "number": (number, "a number"),
        "pos_number": (number and value > 0, "a number > 0"),
        "nonneg_number": (number and value >= 0, "a number >= 0"),
        "fraction": (number and 0 <= value < 1, "a number in [0, 1)"),
        "str": (isinstance(value, str), "a string"),
        "bool": (isinstance(value, bool), "true or false"),
        "size": (isinstance(value, str), "a size WIDTHxHEIGHT"),
        "nonneg_numbers": (isinstance(value, list) and bool(value) and all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value),
            "a non-empty list of numbers >= 0"),
        "pos_numbers": (isinstance(value, list) and bool(value) and all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value),
            "a non-empty list of numbers > 0"),
        "combine_list": (isinstance(value, list) and bool(value) and all(
            v in ("average", "stack") for v in value) and len(set(value)) == len(value),
            "a non-empty list of average and/or stack, each once"),
        "method_names": (isinstance(value, list) and bool(value) and all(
            isinstance(v, str) for v in value) and len(set(value)) == len(value),
            "a non-empty list of method names, each once"),
    }
    if kind not in checks:
        raise ValueError(f"{where}: unknown kind {kind!r} in its method's SPEC")
    ok, what = checks[kind]
    return None if ok else f"must be {what}"


def _check_method(params: dict[str, Any], group: str, name: str, section: Any) -> None:
    where = f"{group}.{name}"
    known = [s.name for s in method_specs().values() if s.group == group]
    if name not in method_specs() or method_specs()[name].group != group:
        raise ParamsError(f"unknown method '{where}' in params; methods known in {group}: "
                          f"{', '.join(known)} (a method is a module in src/postergenre/methods)")
    spec = method_spec(name)
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ParamsError(f"{where}: expected a mapping, got {section!r}")
    for key, value in section.items():
        if key not in spec.params:
            raise ParamsError(f"unknown key '{where}.{key}' in params; allowed here: "
                              f"{', '.join(sorted(spec.params))}")
        problem = _value_error(f"{where}.{key}", spec.params[key], value)
        if problem:
            raise ParamsError(f"'{where}.{key}' {problem}, got {value!r}")
    missing = sorted(set(spec.params) - set(section))
    if missing:
        raise ParamsError(f"{where}: missing key(s) {', '.join(missing)}")
    if "size" in section and section["size"] not in params["resize"]["sizes"]:
        raise ParamsError(f"{where}.size {section['size']!r} is not one of resize.sizes "
                          f"{params['resize']['sizes']}")


# -- what each method reads --------------------------------------------------------------------
def all_methods(params: dict[str, Any]) -> dict[str, dict]:
    """Every method section, pixel methods first, then those on backbone features."""
    return {name: section or {} for group in METHOD_GROUPS for name, section in params[group].items()}


def method_spec_in(params: dict[str, Any], method: str) -> MethodSpec:
    if method not in all_methods(params):
        raise ParamsError(f"no section methods.{method} or feature_methods.{method} in params.yaml; "
                          f"methods there: {', '.join(all_methods(params))}")
    return method_spec(method)


def stage_params(params: dict[str, Any], method: str) -> list[str]:
    """Every params key a method's train stage reads (dvc.yaml lists exactly these): the seed,
    the top-level keys its SPEC reads, its own section, how posters were decoded (saved with the
    model for `predict`), the data source (recorded in the model card), and for a method on
    features, the embed stage's settings."""
    spec = method_spec_in(params, method)
    keys = ["seed", *spec.reads, f"{spec.group}.{method}", "resize.sizes", "resize.max_pixels",
            "data.source", "data.path"]
    return keys + (["embed"] if spec.input == "features" else [])


def _get(params: dict[str, Any], dotted: str) -> Any:
    node = params
    for part in dotted.split("."):
        node = node[part]
    return node


def method_settings(params: dict[str, Any], method: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A method's constructor arguments, its image size, and every param it reads (to log)."""
    spec = method_spec_in(params, method)
    kwargs = dict(all_methods(params)[method])
    if spec.input == "features":
        # Posters at the embed stage's size go through the embed stage's backbone.
        embed = params["embed"]
        size = embed["size"]
        kwargs.update(backbones=embed["backbones"], views=embed["views"], pool=embed["pool"],
                      embed_batch_size=embed["batch_size"])
    else:
        size = kwargs.pop("size")
    kwargs.update({key: params[key] for key in spec.reads})
    reads = {key: _get(params, key) for key in stage_params(params, method)}
    return kwargs, size, reads


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


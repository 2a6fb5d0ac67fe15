"""params.yaml: the one source of every knob, validated on load.

Each section is a pydantic model (`core.settings`), each method's section its module's
`Settings`; both closed (`extra="forbid"`) and strict. `dvc exp run -S key=value` silently adds
keys it does not know, so a misspelt key must be an error that names the key's path and the keys
allowed where it stood, not a default quietly used. The validated file is returned as it was
read (a dict): the models check it and hold the defaults, the stages read it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import BaseModel, Field, ValidationError

from postergenre.core import settings
from postergenre.core.settings import BACKBONES, VIEWS  # noqa: F401 (named by tests and docs)
from postergenre.core.sizes import SizeError
from postergenre.core.sizes import parse_size as _parse_size
from postergenre.methods import MethodSpec
from postergenre.methods import spec as method_spec
from postergenre.methods import specs as method_specs

# The groups of methods: on resized pixels, and on the embed stage's backbone features.
METHOD_GROUPS = ("methods", "feature_methods")


class ParamsError(ValueError):
    """params.yaml is missing, malformed, or names a key or value it should not."""


class Params(settings.Settings):
    """The whole file. Method sections are checked one by one against their method's settings."""

    seed: int = 20190601
    k: int = Field(10, ge=1)  # neighbours for the kNN methods (`dvc exp run -S k=40`)
    data: settings.Data = settings.Data()
    clean: settings.Clean = settings.Clean()
    resize: settings.Resize = settings.Resize()
    embed: settings.Embed = settings.Embed()
    training: settings.Training = settings.Training()
    split: settings.Split = settings.Split()
    methods: dict[str, dict[str, Any] | None] = {}
    feature_methods: dict[str, dict[str, Any] | None] = {}
    ensemble: dict[str, Any] | None = None


def parse_size(text: str) -> tuple[int, int]:
    """'100x150' -> (width, height); a ParamsError if it is not a size."""
    try:
        return _parse_size(text)
    except SizeError as exc:
        raise ParamsError(str(exc)) from None


def validate(params: dict[str, Any]) -> dict[str, Any]:
    """Check keys, types and values; return the params unchanged if they are sound."""
    if not isinstance(params, dict):
        raise ParamsError(f"params: expected a mapping, got {params!r}")
    missing = [key for key in Params.model_fields if key not in params and key != "ensemble"]
    if missing:
        raise ParamsError(f"params: missing key(s) {', '.join(missing)}")
    try:
        checked = Params.model_validate(params)
    except ValidationError as exc:
        raise ParamsError(settings.describe(exc, Params)) from None
    for name in ("data", "clean", "resize", "embed", "training", "split"):
        _require_every_key(params[name], cast(type[BaseModel], Params.model_fields[name].annotation), name)
    if checked.embed.size not in checked.resize.sizes:
        raise ParamsError(
            f"embed.size {checked.embed.size!r} is not one of resize.sizes {checked.resize.sizes}"
        )
    if not params["methods"] and not params["feature_methods"]:
        raise ParamsError("no method to run: methods and feature_methods are both empty")
    for group in METHOD_GROUPS:
        for name, section in params[group].items():
            _check_method(params, group, name, section)
    if params.get("ensemble") is not None:
        _check_method(params, "ensemble", "ensemble", params["ensemble"])
        others = [m for m in all_methods(params) if m != "ensemble"]
        for member in params["ensemble"]["members"]:
            if member not in others:
                raise ParamsError(
                    f"ensemble.members names {member!r}, which is not another method "
                    f"of params.yaml ({', '.join(others)})"
                )
    return params


def _require_every_key(section: Any, model: type[BaseModel], where: str) -> None:
    """params.yaml states every knob: a key left out is an error, not a default used quietly."""
    missing = [key for key in model.model_fields if key not in section]
    if missing:
        raise ParamsError(f"{where}: missing key(s) {', '.join(missing)}")
    for key, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            _require_every_key(section[key], kind, f"{where}.{key}")


def _check_method(params: dict[str, Any], group: str, name: str, section: Any) -> None:
    where = group if group == name else f"{group}.{name}"
    known = [s.name for s in method_specs().values() if s.group == group]
    if name not in method_specs() or method_specs()[name].group != group:
        raise ParamsError(
            f"unknown method '{where}' in params; methods known in {group}: "
            f"{', '.join(known)} (a method is a module in src/postergenre/methods)"
        )
    spec = method_spec(name)
    section = section or {}
    if not isinstance(section, dict):
        raise ParamsError(f"{where}: expected a mapping, got {section!r}")
    # what dvc.yaml's foreach reads: the method's family folder and top-level key
    for key in ("family", "reads"):
        fixed = spec.settings.model_fields.get(key)
        if fixed is not None and section.get(key) != fixed.default:
            raise ParamsError(
                f"'{where}.{key}' must be {fixed.default!r} (fixed by "
                f"methods/{name}.py: dvc.yaml's stages read it), got "
                f"{section.get(key)!r}"
            )
    try:
        spec.settings.model_validate(section)
    except ValidationError as exc:
        raise ParamsError(settings.describe(exc, spec.settings, where)) from None
    _require_every_key(section, spec.settings, where)
    if "size" in section and section["size"] not in params["resize"]["sizes"]:
        raise ParamsError(
            f"{where}.size {section['size']!r} is not one of resize.sizes {params['resize']['sizes']}"
        )


# -- what each method reads --------------------------------------------------------------------
def all_methods(params: dict[str, Any]) -> dict[str, dict]:
    """Every method section, pixel methods first, then those on backbone features, then the
    ensemble."""
    out = {name: section or {} for group in METHOD_GROUPS for name, section in params[group].items()}
    if params.get("ensemble") is not None:
        out["ensemble"] = params["ensemble"]
    return out


def section_key(method: str) -> str:
    """Where a method's section is in params.yaml: methods.custom, feature_methods.head, ensemble."""
    group = method_spec(method).group
    return group if group == method else f"{group}.{method}"


def method_spec_in(params: dict[str, Any], method: str) -> MethodSpec:
    if method not in all_methods(params):
        raise ParamsError(
            f"no section methods.{method}, feature_methods.{method} or {method} in "
            f"params.yaml; methods there: {', '.join(all_methods(params))}"
        )
    return method_spec(method)


def stage_params(params: dict[str, Any], method: str) -> list[str]:
    """Every params key a method's train stage reads (dvc.yaml lists these): the seed, the
    top-level key its family reads, its own section, how posters were decoded (saved with the
    model for `predict`), the data source (recorded in the model card), and for a method on
    features, the embed stage's settings."""
    spec = method_spec_in(params, method)
    reads = [] if spec.reads == "seed" else [spec.reads]
    keys = [
        "seed",
        *reads,
        section_key(method),
        "resize.sizes",
        "resize.max_pixels",
        "data.source",
        "data.path",
    ]
    return keys + (["embed"] if spec.input != "pixels" else [])


def _get(params: dict[str, Any], dotted: str) -> Any:
    node = params
    for part in dotted.split("."):
        node = node[part]
    return node


def method_settings(params: dict[str, Any], method: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A method's constructor arguments, its image size, and every param it reads (to log)."""
    spec = method_spec_in(params, method)
    kwargs = {k: v for k, v in all_methods(params)[method].items() if k not in ("family", "reads")}
    if spec.input != "pixels":
        # Posters at the embed stage's size go through the embed stage's backbone.
        embed = params["embed"]
        size = embed["size"]
        kwargs.update(
            backbones=embed["backbones"],
            views=embed["views"],
            pool=embed["pool"],
            embed_batch_size=embed["batch_size"],
        )
    else:
        size = kwargs.pop("size")
    if spec.reads != "seed":
        kwargs[spec.reads] = params[spec.reads]
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

"""The method registry: name -> estimator class, params schema, and the code files it runs.

A method is one module here, named after it, whose top level holds a `SPEC` literal:

    SPEC = {
        "estimator": "MLkNN",            # the class in this module
        "input": "pixels",               # pixels (posters at its `size`) | features (the embed stage's)
        "reads": ["k"],                  # top-level params it reads besides `seed`
        "params": {"size": "size", "s": "number"},   # its section of params.yaml
    }

plus one section under `methods:` (pixels) or `feature_methods:` (features) in params.yaml.
`postergenre dag` then writes its train / evaluate stages into dvc.yaml.

Everything here is read from the modules' source (the SPEC literal and the import statements),
never by importing them: validating params or writing dvc.yaml does not import torch, and the
code files a stage depends on are exactly the modules it imports, followed through the package.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = "postergenre"
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # src/postergenre
METHODS_DIR = Path(__file__).resolve().parent
INPUTS = ("pixels", "features")
# params.yaml's group for each kind of input.
GROUP = {"pixels": "methods", "features": "feature_methods"}


@dataclass(frozen=True)
class MethodSpec:
    name: str
    estimator: str
    input: str
    reads: tuple[str, ...]
    params: dict[str, Any]

    @property
    def group(self) -> str:
        return GROUP[self.input]

    @property
    def trains_in_epochs(self) -> bool:
        """Whether training goes in epochs (a training plot to draw): its params have `epochs`."""
        return "epochs" in self.params


def _literal(tree: ast.Module, name: str) -> Any:
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name):
            return ast.literal_eval(node.value)
    return None


@functools.cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _spec_from(path: Path) -> MethodSpec | None:
    raw = _literal(_parse(path), "SPEC")
    if raw is None:
        return None
    where = f"{path.name}: SPEC"
    if set(raw) != {"estimator", "input", "reads", "params"}:
        raise ValueError(f"{where} must have exactly the keys estimator, input, reads, params")
    if raw["input"] not in INPUTS:
        raise ValueError(f"{where}['input'] must be one of {', '.join(INPUTS)}")
    if raw["input"] == "pixels" and "size" not in raw["params"]:
        raise ValueError(f"{where}: a method on pixels reads a `size`")
    return MethodSpec(path.stem, raw["estimator"], raw["input"], tuple(raw["reads"]),
                      dict(raw["params"]))


@functools.cache
def specs() -> dict[str, MethodSpec]:
    """Every method module's spec, by name, in name order."""
    out = {}
    for path in sorted(METHODS_DIR.glob("*.py")):
        spec = _spec_from(path)
        if spec is not None:
            out[spec.name] = spec
    return out


def spec(method: str) -> MethodSpec:
    known = specs()
    if method not in known:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(known)}")
    return known[method]


def estimator_class(method: str):
    """The class implementing `method`, imported only when asked for (torch is slow to import)."""
    s = spec(method)
    return getattr(importlib.import_module(f"{PACKAGE}.methods.{method}"), s.estimator)


CARD = "model.json"  # in every model folder: method, genres, size, thresholds, params, state


CARD_KEYS = ("method", "genres", "size", "seed", "params", "thresholds", "state")


def read_model_card(model_dir: str | Path) -> dict[str, Any]:
    """model.json, checked: valid JSON, an object with every key a model needs."""
    path = Path(model_dir) / CARD
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir}: not a model folder (no {CARD})")
    try:
        card = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); the model folder is damaged") from None
    missing = [k for k in CARD_KEYS if not isinstance(card, dict) or k not in card]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}; the model folder is damaged")
    if len(card["thresholds"]) != len(card["genres"]):
        raise ValueError(f"{path}: {len(card['genres'])} genres but {len(card['thresholds'])} "
                         "thresholds; the model folder is damaged")
    return card


def load_model(model_dir: str | Path):
    """Load a saved model folder, whatever its method."""
    card = read_model_card(model_dir)
    return estimator_class(card["method"]).load(model_dir)


# -- the code a stage runs ---------------------------------------------------------------------
def _module_file(dotted: str) -> Path | None:
    """The file of a `postergenre...` module (a package's __init__.py), or None if not ours."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """Dotted names of the package modules `path` imports, at top level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            # `from postergenre import dataset` names a module, not an attribute
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in out if _module_file(name) is not None}


def _with_parents(dotted: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py too."""
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def code_files(*modules: str) -> list[str]:
    """Every package file that running `modules` executes, as paths relative to the repository
    (src/postergenre/...), sorted: the modules, what they import, and so on."""
    seen: set[Path] = set()
    todo = [m for module in modules for m in _with_parents(module)]
    while todo:
        path = _module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            todo.extend(_with_parents(name))
    root = PACKAGE_DIR.parent.parent
    return sorted(str(p.relative_to(root)) for p in seen)


def method_module(method: str) -> str:
    return f"{PACKAGE}.methods.{spec(method).name}"

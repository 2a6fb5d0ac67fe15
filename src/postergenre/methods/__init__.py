"""The method registry: name -> estimator class and settings, and what a method reads.

A method is one module here, named after it, holding its estimator (a subclass of
`methods.base.Estimator` whose `method` is the module's name) and its `Settings`: the pydantic
model of its section of params.yaml, whose fields are the estimator's parameters and whose
defaults are params.yaml's. It goes under `methods:` (on pixels), `feature_methods:` (on the
embed stage's features), or is the `ensemble` section. The section repeats `family` and `reads`
(fixed by the method) for dvc.yaml's `foreach` to name the code and params its stages depend on.

The method modules import torch on first use only (core/lazy.py): reading every method's
settings, as validating params.yaml does, imports no torch.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

from postergenre.methods.base import CARD, Estimator, MethodSettings, read_model_card

__all__ = ["CARD", "GROUP", "MethodSpec", "estimator_class", "load_model", "read_model_card", "spec", "specs"]

PACKAGE = "postergenre"
METHODS_DIR = Path(__file__).resolve().parent
# modules here that are not methods
NOT_METHODS = {"__init__", "params", "heatmaps"}
# params.yaml's group for each kind of input (the ensemble is a section of its own).
GROUP = {"pixels": "methods", "features": "feature_methods", "members": "ensemble"}


@dataclass(frozen=True)
class MethodSpec:
    """What a method's settings say about it, by name."""

    name: str
    settings: type[MethodSettings]  # its Settings model

    @property
    def input(self) -> str:
        return self.settings.input

    @property
    def group(self) -> str:
        return GROUP[self.input]

    @property
    def family(self) -> str | None:
        field = self.settings.model_fields.get("family")
        return field.default if field else None

    @property
    def reads(self) -> str:
        """The top-level params key it reads besides the seed (`seed` for none)."""
        field = self.settings.model_fields.get("reads")
        return field.default if field else "seed"

    @property
    def study(self) -> bool:
        return self.settings.study

    @property
    def trains_in_epochs(self) -> bool:
        """Whether training goes in epochs (a training plot to draw): its settings have `epochs`."""
        return "epochs" in self.settings.model_fields


def _module(name: str):
    return importlib.import_module(f"{PACKAGE}.methods.{name}")


@functools.cache
def specs() -> dict[str, MethodSpec]:
    """Every method module's spec, by name, in name order."""
    out = {}
    for path in sorted(METHODS_DIR.glob("*.py")):
        if path.stem not in NOT_METHODS:
            out[path.stem] = MethodSpec(path.stem, _module(path.stem).Settings)
    return out


def spec(method: str) -> MethodSpec:
    known = specs()
    if method not in known:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(known)}")
    return known[method]


def estimator_class(method: str):
    """The class implementing `method`: the Estimator subclass of its module named after it."""
    spec(method)
    module = _module(method)
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Estimator) and value.method == method:
            return value
    raise ValueError(f"methods/{method}.py has no Estimator subclass with method = {method!r}")


def load_model(model_dir: str | Path):
    """Load a saved model folder, whatever its method."""
    card = read_model_card(model_dir)
    return estimator_class(card["method"]).load(model_dir)

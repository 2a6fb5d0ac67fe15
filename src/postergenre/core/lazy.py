"""Modules imported on first use.

torch takes about 3 s to import (bench/cli.py measures it). Validating params.yaml, showing a
subcommand's help and the kNN stages never touch it, yet they import the method modules, whose
networks need it; those modules name torch through `lazy_module`, and torch is imported the first
time one of its attributes is asked for.
"""

from __future__ import annotations

import importlib
import types


class LazyModule(types.ModuleType):
    """Stands for the module of its name until an attribute is asked of it, then imports it and
    takes its namespace (later lookups find it directly)."""

    def __getattr__(self, attr: str):
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, attr)


def lazy_module(name: str) -> types.ModuleType:
    """The module `name`, imported when first used."""
    return LazyModule(name)

"""Methods: one module each, all behind the `Estimator` interface in `base.py`.

A new method is one module here, one entry in `METHODS`, and one section under `methods:` in
params.yaml; dvc.yaml's `foreach` picks it up from params.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from postergenre.methods.base import Estimator, read_model_card

METHODS: dict[str, str] = {
    "baseline": "postergenre.methods.baseline:RandomBaseline",
    "mlknn": "postergenre.methods.knn:MLkNN",
    "ovr": "postergenre.methods.knn:OneVsRestKNN",
    "custom": "postergenre.methods.networks:CustomCNNEstimator",
    "resnet34": "postergenre.methods.networks:ResNet34Estimator",
    "head": "postergenre.methods.features:FeatureHead",
    "mlknn_features": "postergenre.methods.features:FeatureMLkNN",
}


def estimator_class(method: str) -> type[Estimator]:
    """The class implementing `method`, imported only when asked for (torch is slow to import)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(sorted(METHODS))}")
    module, name = METHODS[method].split(":")
    return getattr(importlib.import_module(module), name)


def load_model(model_dir: str | Path) -> Estimator:
    """Load a saved model folder, whatever its method."""
    card = read_model_card(model_dir)
    return estimator_class(card["method"]).load(model_dir)

"""The one estimator interface: fit, predict_proba, predict, save, load.

A saved model is a folder holding `model.json` (method, genre vocabulary in order, image size,
thresholds, parameters) plus whatever weights the method needs, so it predicts the same anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from postergenre.atomic import atomic_path, write_json

CARD = "model.json"


def read_model_card(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / CARD
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir}: not a model folder (no {CARD})")
    return json.loads(path.read_text(encoding="utf-8"))


class Estimator:
    """Base class. Subclasses set `method` and implement `_fit`, `predict_proba`, and if they
    hold weights, `_save_weights` / `_load_weights`."""

    method = ""
    # False for a method whose predictions are not its scores thresholded (the random baseline):
    # it gets no tuned thresholds.
    probabilistic = True
    # "pixels": fit / predict_proba read posters [n, H, W, 3]; "features": they also accept the
    # embed stage's backbone features [n, dim] (see methods/features.py).
    input = "pixels"

    def __init__(self, genres: list[str], size: str, seed: int = 0, **params: Any):
        self.genres = list(genres)
        self.size = size
        self.seed = seed
        self.params = params
        self.thresholds = np.full(len(self.genres), 0.5)
        # How posters were decoded for training (e.g. the JPEG draft size of the resize stage),
        # so `predict` turns a new poster into exactly the pixels the model was trained on.
        self.preprocess: dict[str, Any] = {}

    # -- the interface -------------------------------------------------------------------------
    def fit(self, X: np.ndarray, Y: np.ndarray, dev: tuple[np.ndarray, np.ndarray] | None = None,
            on_epoch=None) -> Estimator:
        """Fit on posters X [n, H, W, 3] uint8 and labels Y [n, n_genres] 0/1.

        `dev` (posters, labels) lets iterative methods report a dev loss per epoch to
        `on_epoch(record)`.
        """
        self._check_X(X)
        if Y.shape != (len(X), len(self.genres)):
            raise ValueError(f"Y must be [{len(X)}, {len(self.genres)}], got {list(Y.shape)}")
        if len(X) == 0:
            raise ValueError("cannot fit on an empty training split")
        self._fit(X, Y, dev=dev, on_epoch=on_epoch)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """[n, n_genres] scores in [0, 1]."""
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:
        """[n, n_genres] 0/1: scores at or above each genre's threshold."""
        return (self.predict_proba(X) >= self.thresholds).astype(np.uint8)

    def save(self, model_dir: str | Path) -> None:
        """Write the model folder whole or not at all."""
        with atomic_path(model_dir) as tmp:
            tmp.mkdir(parents=True)
            write_json(tmp / CARD, {
                "method": self.method,
                "genres": self.genres,
                "size": self.size,
                "seed": self.seed,
                "params": self.params,
                "thresholds": [float(t) for t in self.thresholds],
                "preprocess": self.preprocess,
                "state": self._state(),
            })
            self._save_weights(tmp)

    @classmethod
    def load(cls, model_dir: str | Path) -> Estimator:
        card = read_model_card(model_dir)
        if card["method"] != cls.method:
            raise ValueError(f"{model_dir} holds a {card['method']!r} model, not {cls.method!r}")
        model = cls(card["genres"], card["size"], card["seed"], **card["params"])
        model.thresholds = np.asarray(card["thresholds"], dtype=float)
        model.preprocess = card.get("preprocess", {})
        model._set_state(card["state"])
        model._load_weights(Path(model_dir))
        return model

    # -- for subclasses ------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None) -> None:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        """Small learned state that fits in model.json."""
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        pass

    def _save_weights(self, folder: Path) -> None:
        pass

    def _load_weights(self, folder: Path) -> None:
        pass

    def _check_X(self, X: np.ndarray) -> None:
        if X.ndim != 4 or X.shape[-1] != 3:
            raise ValueError(f"X must be posters [n, height, width, 3], got shape {list(X.shape)}")

"""The one estimator interface: fit, predict_proba, predict, save, load.

A saved model is a folder holding `model.json` (method, genre vocabulary in order, image size,
thresholds, parameters) plus whatever weights the method needs, so it predicts the same anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import ValidationError

from postergenre.core import metrics
from postergenre.core.atomic import atomic_path, write_json
from postergenre.core.settings import Settings, Size, describe
from postergenre.core.sizes import parse_size

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
        raise ValueError(
            f"{path}: {len(card['genres'])} genres but {len(card['thresholds'])} "
            "thresholds; the model folder is damaged"
        )
    return card


Input = Literal["pixels", "features", "members"]  # what a method reads: see MethodSettings


class MethodSettings(Settings):
    """A method's section of params.yaml: its fields are the estimator's parameters, their
    defaults params.yaml's (a test holds the two equal). Besides them, what the method reads:
    `input` (pixels at its `size`, the embed stage's features, or other methods' models) and
    whether it is one of the CS229 study's methods."""

    input: ClassVar[Input] = "pixels"
    study: ClassVar[bool] = False

    @classmethod
    def parameters(cls) -> set[str]:
        """The fields the estimator takes (what dvc.yaml's foreach reads is not among them)."""
        return set(cls.model_fields) - {"family", "reads", "size"}


class BaseSettings(MethodSettings):
    """A method that runs no family's shared code and reads no top-level key but the seed.
    `family` and `reads` are what dvc.yaml's foreach lists for it: fixed by the method."""

    family: Literal["base"] = "base"
    reads: Literal["seed"] = "seed"
    size: Size = "64x64"


@dataclass
class NeighbourSpace:
    """Where a method finds a poster's nearest training posters: `metric` (euclidean | cosine),
    what the space is (`described`), how inputs become vectors of it (`to_vectors`), the training
    posters' vectors (`train_vectors()`, possibly slow), and whether they may be cached per model
    folder (`cacheable`: they are derived from the split, not held in the folder)."""

    metric: str
    described: str
    to_vectors: Callable[[np.ndarray], np.ndarray]
    train_vectors: Callable[[], np.ndarray]
    cacheable: bool


def read_saved(path: Path, loader=None):
    """A file of a model folder (torch's by default), or a ValueError naming it."""
    try:
        if loader is not None:
            return loader(path)
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing; the model folder is incomplete") from None
    except Exception as exc:  # truncated, or not what torch / numpy wrote
        raise ValueError(
            f"{path}: cannot be read ({type(exc).__name__}: {str(exc)[:160]}); the model folder is damaged"
        ) from None


class Estimator:
    """Base class. Subclasses set `method` and implement `_fit`, `predict_proba`, and if they
    hold weights, `_save_weights` / `_load_weights`."""

    method = ""
    # the method's section of params.yaml (its module's `Settings`)
    Settings: ClassVar[type[MethodSettings]] = MethodSettings
    # The one place that says whether a method's label sets are its scores thresholded. False for
    # the random baseline, whose sets are coin flips: it gets no tuned thresholds (see `decide`).
    probabilistic = True
    # What `postergenre explain`, the page and the genre-maps stage can show of a method: Grad-CAM
    # heat maps (a convolutional network of its own, `cam_activations`), and the nearest training
    # posters in the space it searches (`neighbour_space`).
    has_heatmaps = False

    def __init__(self, genres: list[str], size: str, seed: int = 0, **params: Any):
        self.genres = list(genres)
        self.size = size
        self.seed = seed
        # what was given, checked, and the settings' defaults (params.yaml's) for what was not
        given = {k: v for k, v in params.items() if k in self.Settings.parameters()}
        try:
            checked = self.Settings.model_validate(given)
        except ValidationError as exc:
            raise ValueError(f"{self.method}: {describe(exc, self.Settings)}") from None
        missing = self.Settings.parameters() - set(given)
        self.params = {**{k: getattr(checked, k) for k in sorted(missing)}, **params}
        self.thresholds = np.full(len(self.genres), 0.5)
        # The decision rule chosen on dev (metrics.apply_rule): each movie's top_k genres plus
        # every genre over its threshold raised by `lift`; the default is the thresholds alone.
        self.operating_point: dict[str, Any] = {"top_k": 0, "lift": 0.0}
        # How posters were decoded for training (e.g. the JPEG draft size of the resize stage),
        # so `predict` turns a new poster into exactly the pixels the model was trained on.
        self.preprocess: dict[str, Any] = {}
        # What the model was trained on (data source and path, poster count, content hash), so a
        # reader of the folder, `predict` and MLflow can tell a synthetic model from a real one.
        self.trained_on: dict[str, Any] = {}

    # -- the interface -------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        dev: tuple[np.ndarray, np.ndarray] | None = None,
        on_epoch=None,
        checkpoints: str | Path | None = None,
    ) -> Estimator:
        """Fit on X (what `inputs` gives: posters [n, H, W, 3] uint8 for a method on pixels) and
        labels Y [n, n_genres] 0/1.

        `dev` (inputs, labels) lets iterative methods pick their best epoch and report it to
        `on_epoch(record)`; `checkpoints` is a folder where they save each epoch and resume from.
        """
        self._check_fit_X(X)
        if Y.shape != (len(X), len(self.genres)):
            raise ValueError(f"Y must be [{len(X)}, {len(self.genres)}], got {list(Y.shape)}")
        if len(X) == 0:
            raise ValueError("cannot fit on an empty training split")
        self._fit(X, Y, dev=dev, on_epoch=on_epoch, checkpoints=Path(checkpoints) if checkpoints else None)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """[n, n_genres] scores in [0, 1]."""
        raise NotImplementedError

    def decide(self, P: np.ndarray, tuned: bool = True, rule: bool = True) -> np.ndarray:
        """[n, n_genres] 0/1 label sets from scores P: by the operating point chosen on dev
        (top-k plus raised thresholds; what `predict` does), at or above each genre's tuned
        threshold alone (`rule=False`), or at the study's 0.5 (`tuned=False`)."""
        if not tuned:
            return (P >= 0.5).astype(np.uint8)
        if not rule:
            return (P >= self.thresholds).astype(np.uint8)
        return metrics.apply_rule(
            P, self.thresholds, int(self.operating_point["top_k"]), float(self.operating_point["lift"])
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        """[n, n_genres] 0/1 label sets."""
        return self.decide(self.predict_proba(X))

    def tune_thresholds(
        self, Y_dev: np.ndarray, P_dev: np.ndarray, Y_train: np.ndarray | None = None
    ) -> None:
        """Per-genre thresholds maximising each genre's F1 on the dev split; with the training
        labels, also the operating point: the rule whose dev micro-F1 beats always naming the
        training split's most common genres, with the best dev macro-F1 among those."""
        if not (self.probabilistic and len(Y_dev)):
            return
        self.thresholds = metrics.tune_thresholds(Y_dev, P_dev)
        if Y_train is not None:
            prior = metrics.f1_metrics(Y_dev, metrics.label_frequency_sets(Y_train, len(Y_dev)))
            self.operating_point = metrics.tune_operating_point(
                Y_dev, P_dev, self.thresholds, prior["micro_f1"]
            )

    def dev_scores_for_tuning(self, X_dev: np.ndarray) -> np.ndarray:
        """The dev scores thresholds are tuned on: the model's own (an ensemble fitted on dev
        gives its out-of-fold ones)."""
        return self.predict_proba(X_dev)

    def cam_activations(self, X: np.ndarray, inputs: np.ndarray):
        """For Grad-CAM: the last convolutional block's activations A [1, C, h, w] for one poster
        X [1, H, W, 3] (`inputs`: what its scores were computed from), the genre logits
        computed from A with the graph kept, and the view the map is of."""
        raise ValueError(f"{self.method} has no convolutional network of its own: no heat maps")

    def neighbour_space(self):
        """The space `explain` searches nearest training posters in (a `NeighbourSpace`), or
        None for a method that searches none."""
        return None

    # -- what the model reads ----------------------------------------------------------------
    # Whether `fit` reads what `predict_proba` reads (then a split loaded for training serves
    # scoring too); not for a head that fine-tunes its backbone on posters.
    fits_on_prediction_inputs = True
    # The split `fit` learns from: "train", or "dev" for a method fitted on dev alone (the
    # ensemble), whose training-split inputs the train stage then never computes.
    fits_on = "train"

    def inputs(self, split: str, genres: list[str], training: bool = False):
        """One split of what `predict_proba` reads, or with `training` what `fit` reads (a
        `dataset.Split`): here the posters at the model's size, for both."""
        from postergenre.core import dataset

        return dataset.load_split(split, self.size, genres)

    def inputs_from_posters(self, X: np.ndarray) -> np.ndarray:
        """What `predict_proba` reads, from posters [n, H, W, 3] at the model's size."""
        return X

    @property
    def poster_sizes(self) -> list[str]:
        """Every poster size `inputs_from_sized_posters` reads (`predict` decodes each poster
        once and resizes it to each): the model's own."""
        return [self.size]

    def inputs_from_sized_posters(self, posters: dict[str, np.ndarray]) -> np.ndarray:
        """What `predict_proba` reads, from the posters at each of `poster_sizes`."""
        return self.inputs_from_posters(posters[self.size])

    def save(self, model_dir: str | Path) -> None:
        """Write the model folder whole or not at all."""
        with atomic_path(model_dir) as tmp:
            tmp.mkdir(parents=True)
            write_json(
                tmp / CARD,
                {
                    "method": self.method,
                    "genres": self.genres,
                    "size": self.size,
                    "seed": self.seed,
                    "params": self.params,
                    "thresholds": [float(t) for t in self.thresholds],
                    "operating_point": self.operating_point,
                    "preprocess": self.preprocess,
                    "trained_on": self.trained_on,
                    "state": self._state(),
                },
            )
            self._save_weights(tmp)

    @classmethod
    def load(cls, model_dir: str | Path) -> Estimator:
        card = read_model_card(model_dir)
        if card["method"] != cls.method:
            raise ValueError(f"{model_dir} holds a {card['method']!r} model, not {cls.method!r}")
        model = cls(card["genres"], card["size"], card["seed"], **card["params"])
        model.thresholds = np.asarray(card["thresholds"], dtype=float)
        model.operating_point = card.get("operating_point", model.operating_point)
        model.preprocess = card.get("preprocess", {})
        model.trained_on = card.get("trained_on", {})
        try:
            model._set_state(card["state"])
            model._load_weights(Path(model_dir))
        except (KeyError, TypeError, RuntimeError) as exc:  # state or weights of another shape
            raise ValueError(
                f"{model_dir}: its weights or state do not fit its model.json "
                f"({type(exc).__name__}: {str(exc)[:200]}); the model folder is "
                "damaged or mixed up"
            ) from None
        return model

    @property
    def width_height(self) -> tuple[int, int]:
        return parse_size(self.size)

    # -- for subclasses ------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None, checkpoints=None) -> None:
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

    def _check_fit_X(self, X: np.ndarray) -> None:
        self._check_X(X)

    def _check_X(self, X: np.ndarray) -> None:
        if X.ndim != 4 or X.shape[-1] != 3:
            raise ValueError(f"X must be posters [n, height, width, 3], got shape {list(X.shape)}")

"""An ensemble of trained models, combined on the dev split: the label structure's method.

It reads the scores of its `members` (model folders the pipeline trained: the head, the custom
CNN, ML-kNN on features, ...) and combines them in the way of `combine` (one or more
candidates; the best out-of-fold dev mAP wins):

- `average`: a weighted mean of the members' scores, the weights (a grid on the simplex, step
  0.1) chosen by dev mAP;
- `stack`: a second stage. For each genre a logistic regression on every member's scores of
  *every* genre (as logits), so that one genre's score can move another's: genre co-occurrence
  (Animation with Family, Horror with Thriller), learnt from the dev split.

Both are fitted on the dev split only (the members' training-split scores are overfit). The
dev scores the thresholds and the operating point are then tuned on are out-of-fold (5 folds),
so the dev split never scores a combination fitted on the same movies. The model folder holds a
copy of every member's folder, so it predicts alone.

`calibrate` (off by default) maps each genre's combined score through a logistic curve of its
logit (Platt scaling) fitted on the out-of-fold dev scores, so that one genre's 0.3 means what
another's does: it leaves each genre's ranking (AP, ROC-AUC, tuned thresholds' F1) as it is and
moves what compares genres with each other, the operating point's top-k and the 0.5 threshold.
"""

from __future__ import annotations

import itertools
import logging
import shutil
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

import numpy as np
from pydantic import AfterValidator, Field

from postergenre.core import dataset, paths
from postergenre.core.settings import PositiveFloat
from postergenre.methods.base import Estimator, Input, MethodSettings, read_saved

log = logging.getLogger(__name__)

_EPS = 1e-6
Combine = Literal["average", "stack"]
COMBINE = get_args(Combine)
OOF = "dev_out_of_fold.npy"


def _logit(P: np.ndarray) -> np.ndarray:
    P = np.clip(P, _EPS, 1 - _EPS)
    return np.log(P / (1 - P))


def simplex_grid(m: int, step: float = 0.1) -> np.ndarray:
    """Every weight vector of m non-negative multiples of `step` summing to 1."""
    n = round(1 / step)
    rows = [c for c in itertools.product(range(n + 1), repeat=m) if sum(c) == n]
    return np.asarray(rows, dtype=float) / n


class _Stacker:
    """Per-genre logistic regression on all members' logits, with one C for every genre."""

    def __init__(self, c: float):
        self.c = c
        self.models: list[Any] = []

    def fit(self, Z: np.ndarray, Y: np.ndarray) -> _Stacker:
        from sklearn.linear_model import LogisticRegression

        self.mean, self.std = Z.mean(axis=0), Z.std(axis=0) + 1e-6
        Zs = (Z - self.mean) / self.std
        self.models = []
        for j in range(Y.shape[1]):
            if 0 < Y[:, j].sum() < len(Y):
                self.models.append(LogisticRegression(C=self.c, max_iter=2000).fit(Zs, Y[:, j]))
            else:  # one class only on dev: its base rate
                self.models.append(float(Y[:, j].mean()))
        return self

    def predict(self, Z: np.ndarray) -> np.ndarray:
        Zs = (Z - self.mean) / self.std
        cols = [
            np.full(len(Z), m) if isinstance(m, float) else m.predict_proba(Zs)[:, 1] for m in self.models
        ]
        return np.stack(cols, axis=1)

    def state(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "c": self.c,
            "genres": [
                m
                if isinstance(m, float)
                else {"coef": m.coef_[0].tolist(), "intercept": float(m.intercept_[0])}
                for m in self.models
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Stacker:
        s = cls(state["c"])
        s.mean, s.std = np.asarray(state["mean"]), np.asarray(state["std"])
        s.models = [g if isinstance(g, float) else _Linear(g) for g in state["genres"]]
        return s


class _Linear:
    """A fitted logistic regression, from its coefficients (what the model folder keeps)."""

    def __init__(self, g: dict[str, Any]):
        self.coef, self.intercept = np.asarray(g["coef"]), g["intercept"]

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-(Z @ self.coef + self.intercept)))
        return np.stack([1 - p, p], axis=1)


def fit_platt(P: np.ndarray, Y: np.ndarray) -> list[tuple[float, float]]:
    """Per genre (a, b) such that sigmoid(a * logit(p) + b) fits Y on (P, Y): a logistic
    regression on one feature, nearly unregularised. A genre with one class only, or whose fit
    would reverse its ranking (a <= 0), keeps its scores (1, 0)."""
    from sklearn.linear_model import LogisticRegression

    out = []
    for j in range(Y.shape[1]):
        a, b = 1.0, 0.0
        if 0 < Y[:, j].sum() < len(Y):
            fit = LogisticRegression(C=100.0, max_iter=1000).fit(_logit(P[:, [j]]), Y[:, j])
            if fit.coef_[0, 0] > 0:
                a, b = float(fit.coef_[0, 0]), float(fit.intercept_[0])
        out.append((a, b))
    return out


def apply_platt(P: np.ndarray, curves: list[tuple[float, float]]) -> np.ndarray:
    a, b = np.asarray(curves, dtype=float).T
    return 1 / (1 + np.exp(-(a * _logit(P) + b)))


def _each_once(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError(f"each once, got {values!r}")
    return values


class Settings(MethodSettings):
    """ensemble: the members' scores combined on dev; out-of-fold dev mAP picks among the
    candidates `combine` (average: weights on a grid; stack: per-genre logistic regression on
    every genre's scores) and `c` (the stack's inverse regularisation)."""

    input: ClassVar[Input] = "members"
    members: Annotated[list[str], Field(min_length=1), AfterValidator(_each_once)] = [
        "head",
        "custom",
        "mlknn_features",
    ]
    combine: Annotated[list[Combine], Field(min_length=1), AfterValidator(_each_once)] = [
        "average",
        "stack",
    ]
    c: Annotated[list[PositiveFloat], Field(min_length=1)] = [0.01, 0.1, 1.0]
    folds: Annotated[int, Field(ge=2, le=20)] = 5  # out-of-fold dev scores
    calibrate: bool = False  # per-genre Platt scaling of the combined scores, on out-of-fold dev


class Ensemble(Estimator):
    method = "ensemble"
    fits_on = "dev"  # the members' training-split scores are overfit: never computed
    Settings = Settings

    def __init__(self, genres: list[str], size: str, seed: int = 0, **params: Any):
        super().__init__(genres, size, seed, **params)
        combine = self.params["combine"]
        self.models: dict[str, Estimator] = {}
        self.weights: list[float] = []
        self.stacker: _Stacker | None = None
        self.way = combine[0]  # the combination the dev split chose
        self.chosen: dict[str, Any] = {}
        self.dev_out_of_fold: np.ndarray | None = None
        self.calibration: list[tuple[float, float]] | None = None  # per genre (a, b), or None
        self.models_dir = paths.MODELS  # where the pipeline's member folders are

    # -- what it reads -------------------------------------------------------------------------
    def member(self, name: str) -> Estimator:
        if name not in self.models:
            from postergenre.methods import load_model

            folder = self.models_dir / name
            model = load_model(folder)
            if model.genres != self.genres:
                raise ValueError(f"{folder} was trained on another genre vocabulary; re-run its train stage")
            self.models[name] = model
        return self.models[name]

    def _check_X(self, X: np.ndarray) -> None:
        n = len(self.genres) * len(self.params["members"])
        if X.ndim != 2 or X.shape[1] != n:
            raise ValueError(f"X must be the members' scores [n, {n}], got shape {list(X.shape)}")

    def inputs(self, split: str, genres: list[str], training: bool = False) -> dataset.Split:
        """Every member's scores of the split, side by side (members in params order)."""
        parts, first = [], None
        for name in self.params["members"]:
            model = self.member(name)
            data = model.inputs(split, genres)
            if first is not None and data.ids != first.ids:
                raise ValueError(f"member {name} read the {split} split in another order")
            first = first or data
            parts.append(model.predict_proba(data.X))
            log.info("ensemble: %s scored the %s split (%d movies)", name, split, len(data.ids))
        return dataset.Split(first.ids, np.hstack(parts).astype(np.float64), first.Y)

    def inputs_from_posters(self, X: np.ndarray) -> np.ndarray:
        """Posters [n, H, W, 3] at the ensemble's size -> every member's scores (posters resized
        to a member's own size first, where it reads another)."""
        from PIL import Image

        from postergenre.core.images import resize_variants

        parts = []
        for name in self.params["members"]:
            model = self.member(name)
            width, height = model.width_height
            Xm = (
                X
                if X.shape[1:3] == (height, width)
                else np.stack([resize_variants(Image.fromarray(x), [(width, height)])[0] for x in X])
            )
            parts.append(model.predict_proba(model.inputs_from_posters(Xm)))
        return np.hstack(parts).astype(np.float64)

    @property
    def poster_sizes(self) -> list[str]:
        """The members' sizes (`predict` resizes each decoded poster to each, as the resize
        stage did, rather than resizing a resized poster)."""
        return list(
            dict.fromkeys(s for name in self.params["members"] for s in self.member(name).poster_sizes)
        )

    def inputs_from_sized_posters(self, posters: dict[str, np.ndarray]) -> np.ndarray:
        parts = [
            self.member(name).predict_proba(self.member(name).inputs_from_sized_posters(posters))
            for name in self.params["members"]
        ]
        return np.hstack(parts).astype(np.float64)

    # -- combining -----------------------------------------------------------------------------
    def _split_scores(self, Z: np.ndarray) -> list[np.ndarray]:
        g = len(self.genres)
        return [Z[:, i * g : (i + 1) * g] for i in range(len(self.params["members"]))]

    def _combine(self, Z: np.ndarray, way: str | None = None, fitted=None) -> np.ndarray:
        """Z combined the chosen way (or `way`, with `fitted` weights or stacker)."""
        way = way or self.way
        if way == "average":
            w = self.weights if fitted is None else fitted
            return sum(wi * Pi for wi, Pi in zip(w, self._split_scores(Z), strict=True))
        return (fitted or self.stacker).predict(_logit(Z))

    def _folds(self, n: int) -> list[np.ndarray]:
        order = np.random.default_rng(self.seed).permutation(n)
        return [np.sort(part) for part in np.array_split(order, min(self.params["folds"], n))]

    def _fit_on(self, Z: np.ndarray, Y: np.ndarray, way: str, c: float | None) -> Any:
        """One combination fitted on (Z, Y): the weights for average, the stacker for stack."""
        from postergenre.core.metrics import mean_average_precision

        if way == "stack":
            return _Stacker(c).fit(_logit(Z), Y)
        grid = simplex_grid(len(self.params["members"]))
        scores = [mean_average_precision(Y, self._combine(Z, "average", w)) or 0.0 for w in grid]
        return grid[int(np.argmax(scores))]

    def _cross_fitted(self, Z: np.ndarray, Y: np.ndarray, fit, apply) -> np.ndarray:
        """Each fold of the dev split scored by `apply(Z_fold, fit(Z_rest, Y_rest))`: what a
        model fitted without those movies makes of them."""
        P = np.zeros(Y.shape)
        for held in self._folds(len(Z)):
            keep = np.setdiff1d(np.arange(len(Z)), held)
            P[held] = apply(Z[held], fit(Z[keep], Y[keep]))
        return P

    def _out_of_fold(self, Z: np.ndarray, Y: np.ndarray, way: str, c: float | None) -> np.ndarray:
        return self._cross_fitted(
            Z, Y, lambda Zk, Yk: self._fit_on(Zk, Yk, way, c), lambda Zh, f: self._combine(Zh, way, f)
        )

    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None, checkpoints=None) -> None:
        """Fitted on dev alone (`fits_on`: the train stage passes dev as X, Y too)."""
        from postergenre.core.metrics import mean_average_precision

        if dev is None or len(dev[0]) == 0:
            raise ValueError("ensemble: the combination is fitted on the dev split, which is empty")
        Z, Yd = np.asarray(dev[0], dtype=np.float64), dev[1]
        candidates = [
            (way, c)
            for way in self.params["combine"]
            for c in (self.params["c"] if way == "stack" else [None])
        ]
        best = None
        self.chosen = {
            "members_dev_mAP": {
                name: mean_average_precision(Yd, P)
                for name, P in zip(self.params["members"], self._split_scores(Z), strict=True)
            },
            "out_of_fold_dev_mAP": {},
        }
        for way, c in candidates:
            oof = self._out_of_fold(Z, Yd, way, c)
            score = mean_average_precision(Yd, oof) or 0.0
            label = f"{way}, C={c:g}" if c is not None else way
            self.chosen["out_of_fold_dev_mAP"][label] = round(score, 6)
            log.info("ensemble (%s): out-of-fold dev mAP %.4f", label, score)
            if best is None or score > best[0]:
                best = (score, way, c, oof)
        score, self.way, c, self.dev_out_of_fold = best
        fitted = self._fit_on(Z, Yd, self.way, c)
        if self.way == "stack":
            self.stacker, self.weights = fitted, []
        else:
            self.stacker, self.weights = None, [float(w) for w in fitted]
        self.chosen.update({"way": self.way, "c": c, "weights": self.weights or None})
        self.calibration = None
        if self.params.get("calibrate"):
            # the dev scores tuned on stay out-of-fold: each fold calibrated by the others' fit
            oof = self.dev_out_of_fold
            self.calibration = fit_platt(oof, Yd)
            self.dev_out_of_fold = self._cross_fitted(oof, Yd, fit_platt, apply_platt)
        self.chosen["calibrated"] = self.calibration is not None
        log.info("ensemble: chose %s", self.chosen)

    def dev_scores_for_tuning(self, X_dev: np.ndarray) -> np.ndarray:
        """The out-of-fold dev scores: thresholds tuned on in-sample scores would be optimistic."""
        if self.dev_out_of_fold is not None and len(self.dev_out_of_fold) == len(X_dev):
            return self.dev_out_of_fold
        return self.predict_proba(X_dev)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._check_X(X)
        if len(X) == 0:
            return np.zeros((0, len(self.genres)))
        P = np.clip(self._combine(np.asarray(X, dtype=np.float64)), 0.0, 1.0)
        return apply_platt(P, self.calibration) if self.calibration else P

    # -- saving --------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "way": self.way,
            "weights": self.weights,
            "chosen": self.chosen,
            "stacker": self.stacker.state() if self.stacker else None,
            "calibration": self.calibration,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.way = state["way"]
        self.weights = state["weights"]
        self.chosen = state["chosen"]
        self.stacker = _Stacker.from_state(state["stacker"]) if state["stacker"] else None
        curves = state.get("calibration")  # absent from a card written before it existed
        self.calibration = [(float(a), float(b)) for a, b in curves] if curves else None

    def _save_weights(self, folder: Path) -> None:
        for name in self.params["members"]:
            shutil.copytree(self.models_dir / name, folder / "members" / name)
        if self.dev_out_of_fold is not None:  # the honest dev scores, for evaluate's dev block
            np.save(folder / OOF, self.dev_out_of_fold)

    def _load_weights(self, folder: Path) -> None:
        self.models_dir = folder / "members"
        self.models = {}
        for name in self.params["members"]:
            read_saved(self.models_dir / name / "model.json", lambda p: p.read_bytes())
        if (folder / OOF).is_file():
            self.dev_out_of_fold = read_saved(folder / OOF, np.load)

"""The study's random baseline: guess each genre at random, as often as it occurs in training."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from postergenre.core.metrics import label_frequency
from postergenre.methods.base import BaseSettings, Estimator


class Settings(BaseSettings):
    """methods.baseline: the study's random baseline."""

    study: ClassVar[bool] = True


class RandomBaseline(Estimator):
    """Scores are the training frequencies; label sets are coin flips weighted by them.

    The flips are seeded and drawn in input order, so a repeated run predicts the same sets.
    """

    method = "baseline"
    Settings = Settings
    probabilistic = False

    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None, checkpoints=None) -> None:
        self.frequencies = label_frequency(Y)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._check_X(X)
        return np.tile(self.frequencies, (len(X), 1))

    def decide(self, P: np.ndarray, tuned: bool = True, rule: bool = True) -> np.ndarray:
        """Coin flips: genre j with probability P[:, j], whatever the threshold or rule."""
        rng = np.random.default_rng(self.seed)
        return (rng.random(P.shape) < P).astype(np.uint8)

    def _state(self) -> dict[str, Any]:
        return {"frequencies": [round(float(f), 8) for f in self.frequencies]}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.frequencies = np.asarray(state["frequencies"], dtype=float)

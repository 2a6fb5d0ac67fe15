"""ML-kNN (Zhang & Zhou 2007) on flattened pixels scaled to [0, 1], the study's method."""

from __future__ import annotations

from typing import ClassVar

from postergenre.core.settings import NonNegativeFloat, Size
from postergenre.methods.knn.neighbours import KNNSettings
from postergenre.methods.knn.posterior import MLkNNPosterior


class Settings(KNNSettings):
    """methods.mlknn: ML-kNN on pixels at `size`."""

    study: ClassVar[bool] = True
    size: Size = "64x64"
    s: NonNegativeFloat = 1.0  # Laplace smoothing


class MLkNN(MLkNNPosterior):
    """The study's ML-kNN on pixels; the posterior is the knn family's."""

    method = "mlknn"
    Settings = Settings

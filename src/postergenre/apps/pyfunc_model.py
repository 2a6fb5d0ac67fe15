"""A saved model folder as an MLflow pyfunc model: `mlflow.pyfunc.load_model(uri).predict(...)`.

MLflow loads this file ("models from code": no pickled object); the train stage logs it with the
model folder and the package's source (`postergenre.runtime.serving.log_pyfunc`). It predicts
exactly as `postergenre predict` does:

    model = mlflow.pyfunc.load_model("models:/m-...")        # or runs:/<run id>/pyfunc
    scores = model.predict(pandas.DataFrame({"poster": ["a.jpg", "b.jpg"]}))

`scores` has one row per poster, one column per genre (NaN for a file that is not a usable
poster, with the reason in the log).
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from postergenre.apps.predict import predict_posters

log = logging.getLogger(__name__)


class PosterGenreModel(PythonModel):
    """predict(DataFrame with a `poster` column of file paths, or a list of paths) -> scores."""

    def load_context(self, context) -> None:
        self.model_dir = context.artifacts["model_dir"]

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            if "poster" not in model_input.columns:
                raise ValueError("the input needs a `poster` column of poster file paths")
            paths = [str(p) for p in model_input["poster"]]
        else:
            paths = [str(p) for p in model_input]
        result = predict_posters(self.model_dir, paths, top_k=1)
        for error in result["errors"]:
            log.warning("not predicted: %s (%s %s)", error["poster"], error["reason"], error["detail"])
        scores = {p["poster"]: p["scores"] for p in result["predictions"]}
        nan = dict.fromkeys(result["genres"], np.nan)
        return pd.DataFrame([scores.get(p, nan) for p in paths], columns=result["genres"])


mlflow.models.set_model(PosterGenreModel())

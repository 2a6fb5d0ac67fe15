"""A saved model folder as an MLflow pyfunc model: `mlflow.pyfunc.load_model(uri).predict(...)`.

MLflow loads this file ("models from code": no pickled object); the train stage logs it with the
model folder and the package's source (`postergenre.runtime.registry`). It predicts
exactly as `postergenre predict` does:

    model = mlflow.pyfunc.load_model("models:/postergenre-head@champion")  # or models:/m-...
    scores = model.predict(pandas.DataFrame({"poster": ["a.jpg", "b.jpg"]}))

A poster is a file path, or the image itself as a `data:image/...;base64,` URI: what a client of
`mlflow models serve` sends, which has no access to the server's files. `scores` has one row per
poster, one column per genre (NaN for a poster that is not usable, with the reason in the log).
"""

from __future__ import annotations

import base64
import binascii
import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from postergenre.apps.predict import predict_posters
from postergenre.methods import read_model_card

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
                raise ValueError("the input needs a `poster` column of poster file paths or data URIs")
            posters = [str(p) for p in model_input["poster"]]
        else:
            posters = [str(p) for p in model_input]
        with tempfile.TemporaryDirectory(prefix="postergenre-posters-") as folder:
            paths = [_as_file(p, i, Path(folder)) for i, p in enumerate(posters)]
            readable = [p for p in paths if p is not None]
            result = predict_posters(self.model_dir, readable, top_k=1) if readable else None
        genres = result["genres"] if result else read_model_card(self.model_dir)["genres"]
        for error in result["errors"] if result else []:
            log.warning("not predicted: %s (%s %s)", error["poster"], error["reason"], error["detail"])
        scores = {p["poster"]: p["scores"] for p in result["predictions"]} if result else {}
        nan = dict.fromkeys(genres, np.nan)
        return pd.DataFrame([scores.get(p, nan) if p else nan for p in paths], columns=genres)


def _as_file(poster: str, index: int, folder: Path) -> str | None:
    """A poster's file path: itself, or a data URI's image written into `folder` (None, logged,
    for a data URI that does not decode)."""
    if not poster.startswith("data:"):
        return poster
    header, _, payload = poster.partition(",")
    try:
        if not header.endswith(";base64"):
            raise ValueError("not base64")
        data = base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error) as exc:
        log.warning("not predicted: poster %d (a data URI that does not decode: %s)", index, exc)
        return None
    path = folder / f"poster-{index}"
    path.write_bytes(data)
    return str(path)


mlflow.models.set_model(PosterGenreModel())

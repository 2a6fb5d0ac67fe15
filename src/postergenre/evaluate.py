"""evaluate: score a saved model on the test split, with trivial predictors beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from postergenre import dataset
from postergenre.atomic import write_json
from postergenre.methods import load_model
from postergenre.metrics import all_zeros, label_set_metrics


def evaluate_model(model_dir: str | Path, out_path: str | Path, split: str = "test") -> dict[str, Any]:
    """Write `out_path` (metrics JSON) for the model in `model_dir`; return what was written."""
    model = load_model(model_dir)
    genres = dataset.read_genres()
    if model.genres != genres:
        raise ValueError(
            f"{model_dir} was trained on another genre vocabulary ({len(model.genres)} genres: "
            f"{', '.join(model.genres[:5])}...) than data/interim/genres.json ({len(genres)}: "
            f"{', '.join(genres[:5])}...); re-run its train stage"
        )
    data = dataset.load_split(split, model.size, genres)
    if len(data.ids) == 0:
        raise ValueError(f"the {split} split is empty: nothing to evaluate")
    Yhat = model.predict(data.X)
    result = {
        "method": model.method,
        "split": split,
        f"n_{split}": len(data.ids),
        "n_genres": len(genres),
        split: {
            "model": label_set_metrics(data.Y, Yhat),
            "all_zeros": label_set_metrics(data.Y, all_zeros(data.Y)),
        },
    }
    write_json(out_path, result)
    return result

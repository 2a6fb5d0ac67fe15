"""Shared fixtures: tiny posters and source folders made by the tests themselves."""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("POSTERGENRE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_data(sub: str) -> Path:
    """A folder of ../shared/data, or a clean skip where this machine does not have it."""
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"real data not here: {path} is absent (set POSTERGENRE_SHARED_DATA to the "
                    "folder holding movielens-posters/ and tmdb-sample/)")
    return path


def jpeg_bytes(width: int = 30, height: int = 45, color=(200, 40, 40), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_poster(path: Path, width: int = 30, height: int = 45, color=(200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(width, height, color))
    return path


@pytest.fixture
def default_params() -> dict:
    return copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))


@pytest.fixture(autouse=True)
def _mlflow_to_tmp(tmp_path_factory, monkeypatch):
    """No test writes to the repository's own mlflow.db."""
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")

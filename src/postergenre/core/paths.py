"""Where things are: the repository root, and data paths as the user meant them."""

from __future__ import annotations

import os
from pathlib import Path


def _queued_exp_origin(cwd: Path) -> Path | None:
    """The repository a `dvc exp run --queue` temporary copy (`<repo>/.dvc/tmp/exps/...`) came from."""
    for parent in [cwd, *cwd.parents]:
        if parent.name == "exps" and parent.parent.name == "tmp" and parent.parent.parent.name == ".dvc":
            return parent.parent.parent.parent
    return None


def repo_root() -> Path:
    """The user's repository, also when a stage runs inside a queued experiment's temporary copy."""
    cwd = Path.cwd().resolve()
    return _queued_exp_origin(cwd) or cwd


def resolve_data_path(path: str | Path) -> Path:
    """A data path as the user meant it.

    Relative paths are relative to the working directory (the repository root, where DVC runs
    stages). Queued experiments run in a temporary copy under `<repo>/.dvc/tmp/exps/`, where a
    relative path such as `../shared/data` means nothing; it is then taken from the repository
    the copy was made from.
    """
    path = Path(os.path.expanduser(str(path)))
    if path.is_absolute() or path.exists():
        return path
    origin = _queued_exp_origin(Path.cwd().resolve())
    if origin is not None and (origin / path).exists():
        return origin / path
    return path


# -- the repository's layout: every stage, app and method finds its files here -----------------
# Relative to the working directory: DVC runs every stage from the repository root.
SYNTHETIC = Path("data/raw/synthetic")  # synthesize: the synthetic source's folder (data.path)
DATA = Path("data")  # the data stages' outputs, below; a stage's `--data` names another folder
_data = DATA


def use_data(root: str | Path) -> None:
    """Read the data stages' outputs from `root` (a stage's `--data`) from now on."""
    global _data
    _data = Path(root)


def interim() -> Path:
    """ingest: movies.csv, genres.json, ingest_report.json"""
    return _data / "interim"


def resized() -> Path:
    """resize: one array per size, manifest.csv"""
    return _data / "resized"


def split() -> Path:
    """split: train.txt, dev.txt, test.txt, split_report.json"""
    return _data / "split"


def features() -> Path:
    """embed: <backbone>/<view>/features.npy and embed.json"""
    return _data / "features"


MODELS = Path("models")
METRICS = Path("metrics")
PLOTS = Path("plots")
CHECKPOINTS = Path(".checkpoints")  # a killed training run resumes from here
EXPLAIN_CACHE = Path(".cache/explain")  # explain's neighbour index, once per model folder


def model_dir(method: str) -> Path:
    return MODELS / method


def metrics_file(method: str) -> Path:
    """The headline metrics (`dvc metrics diff` shows these)."""
    return METRICS / f"{method}.json"


def details_file(headline: str | Path) -> Path:
    """Every number beside a headline file: metrics/head.json -> metrics/details/head.json."""
    headline = Path(headline)
    return headline.parent / "details" / headline.name


def bootstrap_file(headline: str | Path) -> Path:
    """The bootstrap's resampled metrics beside a headline file: metrics/head.json ->
    metrics/bootstrap/head.npz (DVC-cached; the report pairs methods from them)."""
    headline = Path(headline)
    return headline.parent / "bootstrap" / f"{headline.stem}.npz"


def plots_dir(method: str) -> Path:
    return PLOTS / method


def features_dir(backbone: str, view: str, root: Path | None = None) -> Path:
    return (root or features()) / backbone / view

"""tidy: what killed runs left behind, removed at the end of every `dvc repro`.

The last stage, `always_changed` in dvc.yaml, so it runs even when DVC restored every other
stage from its run cache (then no other project code runs). It writes nothing DVC tracks and
changes nothing a stage reads:

- temporaries of atomic writes whose process is gone (`.<name>.tmp-<pid>`, `.<name>.old-<pid>`)
  in the folders the stages write;
- checkpoints of models that are saved (`.checkpoints/<method>/` beside `models/<method>/`, once
  the whole pipeline ran: nothing is left to resume), and `.checkpoints/` when empty;
- MLflow runs still RUNNING whose stage process on this host is gone, marked KILLED.

Each removal is logged with its size.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sqlite3
import sys
from pathlib import Path

from postergenre.core import paths
from postergenre.core.atomic import left_by_dead_writer, remove
from postergenre.runtime import entry

log = logging.getLogger(__name__)

# the folders stages write into, and how deep their temporaries can sit
WRITTEN = {
    Path("data"): 3,
    paths.MODELS: 1,
    paths.METRICS: 2,
    paths.PLOTS: 2,
    Path("reports"): 1,
    paths.CHECKPOINTS: 2,
    paths.EXPLAIN_CACHE.parent: 2,
}


def _size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())


def dead_temporaries(roots: dict[Path, int] = WRITTEN) -> list[Path]:
    """Temporaries of dead writers under each root, down to its depth (links not followed, a
    temporary folder not entered)."""
    found: list[Path] = []

    def visit(folder: Path, depth: int) -> None:
        if depth < 1 or not folder.is_dir() or folder.is_symlink():
            return
        for path in sorted(folder.iterdir()):
            if left_by_dead_writer(path):
                found.append(path)
            elif path.is_dir() and not path.is_symlink():
                visit(path, depth - 1)

    for root, depth in roots.items():
        visit(root, depth)
    return found


def saved_checkpoints(checkpoints: Path = paths.CHECKPOINTS) -> list[Path]:
    """`.checkpoints/<method>/` whose model folder holds a saved model."""
    if not checkpoints.is_dir():
        return []
    return [
        folder
        for folder in sorted(checkpoints.iterdir())
        if folder.is_dir() and (paths.model_dir(folder.name) / "model.json").is_file()
    ]


def _running_runs(uri: str) -> bool:
    """Whether the tracking store may hold a RUNNING run. For the default SQLite store this is
    one query (about 5 ms) instead of importing MLflow (about 4 s, every repro); MLflow's
    schema is read only here, and anything unexpected falls back to asking MLflow."""
    if not uri.startswith("sqlite:///"):
        return True
    db = Path(uri[len("sqlite:///") :])
    if not db.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            return con.execute("select count(*) from runs where status = 'RUNNING'").fetchone()[0] > 0
    except sqlite3.Error:
        return True


def end_killed_runs() -> list[str]:
    from postergenre.runtime import tracking

    uri = tracking.tracking_uri()
    if not _running_runs(uri):
        return []
    import mlflow
    from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    experiment = MlflowClient().get_experiment_by_name(tracking.EXPERIMENT)
    return [] if experiment is None else tracking.end_orphaned_runs(experiment.experiment_id)


def tidy() -> dict[str, list[str]]:
    removed = []
    for path in dead_temporaries() + saved_checkpoints():
        size = _size(path)
        remove(path)
        removed.append(str(path))
        log.info("tidy: removed %s (%.1f MB), left by a run that was killed", path, size / 2**20)
    with contextlib.suppress(OSError):  # only when empty
        paths.CHECKPOINTS.rmdir()
    killed = end_killed_runs()
    if not removed and not killed:
        log.info("tidy: nothing left behind by a killed run")
    return {"removed": removed, "runs_killed": killed}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, params: dict | None) -> None:
    tidy()


if __name__ == "__main__":
    sys.exit(entry.main("tidy", __doc__, add_arguments, run, needs_params=False))

"""MLflow: one run per train/evaluate stage execution; DVC stays the source of truth.

Runs go to `sqlite:///<repo>/mlflow.db` unless MLFLOW_TRACKING_URI says otherwise, tagged with
the git SHA, the stage name and DVC_EXP_NAME (set by `dvc exp run`), so each tool points at the
other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

from postergenre.paths import repo_root

EXPERIMENT = "postergenre"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become strings."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value) if isinstance(value, list | tuple) else value
    return out


class StageRun:
    """What a stage can log into its run."""

    def __init__(self, mlflow_module):
        self._mlflow = mlflow_module

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        numeric = {k: float(v) for k, v in flatten(metrics).items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}
        self._mlflow.log_metrics(numeric, step=step)


def fail_orphaned_runs(experiment_id: str) -> list[str]:
    """Mark FAILED the runs still RUNNING whose stage process, on this host, is gone (killed:
    it never got to end its run); return their ids."""
    from mlflow.tracking import MlflowClient

    from postergenre.atomic import process_alive

    client = MlflowClient()
    host = socket.gethostname().replace("'", "")
    runs = client.search_runs([experiment_id], filter_string=(
        f"attributes.status = 'RUNNING' and tags.host = '{host}'"))
    failed = []
    for run in runs:
        pid = run.data.tags.get("pid", "")
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            client.set_tag(run.info.run_id, "ended_by", f"a later stage run: process {pid} was gone")
            client.set_terminated(run.info.run_id, status="FAILED")
            failed.append(run.info.run_id)
    if failed:
        logging.getLogger(__name__).warning("MLflow: %d run(s) of killed stages marked FAILED",
                                            len(failed))
    return failed


@contextlib.contextmanager
def stage_run(stage: str, params: dict[str, Any]) -> Iterator[StageRun]:
    """An MLflow run around one stage execution, with its params and tags logged."""
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    experiment = mlflow.set_experiment(EXPERIMENT)
    fail_orphaned_runs(experiment.experiment_id)
    exp_name = os.environ.get("DVC_EXP_NAME", "")
    with mlflow.start_run(run_name=f"{stage}{' ' + exp_name if exp_name else ''}"):
        mlflow.set_tags({"stage": stage, "git_sha": git_sha(), "dvc_exp_name": exp_name,
                         "host": socket.gethostname(), "pid": str(os.getpid())})
        mlflow.log_params(flatten(params))
        yield StageRun(mlflow)

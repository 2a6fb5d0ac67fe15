"""MLflow: one run per train/evaluate stage execution; DVC stays the source of truth.

Runs go to `sqlite:///<repo>/mlflow.db` (artifacts under `<repo>/mlartifacts/`) unless
MLFLOW_TRACKING_URI says otherwise. Each run carries what a reader needs to know where its
numbers came from: the params the stage read (`data.source` and `data.path` among them), tags
for the git SHA and whether the code or params differed from it (`git_dirty`, with the files),
the stage, DVC_EXP_NAME (set by `dvc exp run`), the content hash of the data, and the model
folder's hash; an evaluate run is linked to the train run of the model it scored (a child of
it, and tagged `train_run_id`). The plots, the model card and the metrics JSON are logged as
artifacts.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from postergenre.core.paths import repo_root

EXPERIMENT = "postergenre"
# What decides a run's numbers: a change here and not in git makes the run's SHA a half-truth.
# (Outputs such as metrics/ and dvc.lock change during every repro and do not count.)
INPUTS = ["src", "params.yaml", "dvc.yaml", ".dvc/plots", "pyproject.toml", "requirements.lock"]
# MLflow 3's UI opens an experiment of this kind on its runs table (not the GenAI overview).
KIND_TAG = ("mlflow.experimentKind", "custom_model_development")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


SERVER_WAIT_S = 10  # how long a stage waits for a tracking server's answer before it fails


def check_server(uri: str, timeout: float = SERVER_WAIT_S) -> None:
    """A tracking server that does not answer fails the stage at once, naming it, instead of
    MLflow's minutes of retries; a file or database store needs no check."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as reply:
            reply.read(64)
    except OSError as exc:  # URLError, refused, timed out
        raise ValueError(
            f"the MLflow tracking server {uri} (MLFLOW_TRACKING_URI) does not answer "
            f"({getattr(exc, 'reason', exc)}); start it, or unset "
            "MLFLOW_TRACKING_URI to log to mlflow.db"
        ) from None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10)
        return out.stdout
    except (OSError, subprocess.SubprocessError):
        return None


def git_sha() -> str:
    out = _git("rev-parse", "HEAD")
    return out.strip() if out else "unknown"


def git_dirty() -> tuple[str, list[str]]:
    """("true" | "false" | "unknown", the changed or new input files) against HEAD."""
    out = _git("status", "--porcelain", "--", *INPUTS)
    if out is None:
        return "unknown", []
    files = [line[3:] for line in out.splitlines() if line.strip()]
    return ("true" if files else "false"), files


def folder_sha256(folder: str | Path) -> str:
    """sha256 over a folder's file names and their contents' sha256 (sorted): which model a run
    is about."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


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

    def __init__(self, mlflow_module, run_id: str):
        self._mlflow = mlflow_module
        self.run_id = run_id

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        numeric = {
            k: float(v)
            for k, v in flatten(metrics).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        self._mlflow.log_metrics(numeric, step=step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_artifacts(self, paths: Iterable[str | Path], artifact_path: str | None = None) -> None:
        """Log the files that exist (a method without epochs has no training plot)."""
        for path in map(Path, paths):
            if path.is_file():
                self._mlflow.log_artifact(str(path), artifact_path)

    def link_to_training(self, stage: str, model_sha256: str) -> str | None:
        """Make this run a child of the train run that saved the model with this hash (the
        latest, if the same model was trained twice); return that run's id."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        run = client.get_run(self.run_id)
        found = client.search_runs(
            [run.info.experiment_id],
            max_results=1,
            order_by=["attributes.start_time DESC"],
            filter_string=f"tags.stage = '{stage}' and tags.model_sha256 = '{model_sha256}'",
        )
        if not found:
            logging.getLogger(__name__).info("MLflow: no %s run saved this model; not linked", stage)
            return None
        train_id = found[0].info.run_id
        self.set_tags({"train_run_id": train_id, "mlflow.parentRunId": train_id})
        client.set_tag(train_id, "evaluate_run_id", self.run_id)
        return train_id


def end_orphaned_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the runs still RUNNING whose stage process, on this host, is gone (killed:
    it never got to end its run); return their ids. Every stage run does this as it starts,
    and so does the tidy stage at the end of every `dvc repro`."""
    from mlflow.tracking import MlflowClient

    from postergenre.core.atomic import process_alive

    client = MlflowClient()
    host = socket.gethostname().replace("'", "")
    runs = client.search_runs(
        [experiment_id], filter_string=(f"attributes.status = 'RUNNING' and tags.host = '{host}'")
    )
    failed = []
    for run in runs:
        pid = run.data.tags.get("pid", "")
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            client.set_tag(run.info.run_id, "ended_by", f"a later stage run: process {pid} was gone")
            client.set_terminated(run.info.run_id, status="KILLED")
            failed.append(run.info.run_id)
    if failed:
        logging.getLogger(__name__).warning("MLflow: %d run(s) of killed stages marked KILLED", len(failed))
    return failed


def connect():
    """MLflow, pointed at this repository's tracking store (a server that does not answer fails
    here, naming it), its own logging quietened; returns (the mlflow module, the store's URI)."""
    uri = tracking_uri()
    check_server(uri)
    # bounded waits on a server that goes away mid-run (MLflow's defaults retry for minutes)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    # logging a model copies its folder through MLflow's download helper, which draws a
    # "Downloading artifacts" bar for a copy that downloads nothing
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    # after the import, which sets mlflow's own level (its INFO lines carry no time stamp)
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)

    mlflow.set_tracking_uri(uri)
    return mlflow, uri


@contextlib.contextmanager
def stage_run(stage: str, params: dict[str, Any]) -> Iterator[StageRun]:
    """An MLflow run around one stage execution, with its params and tags logged."""
    mlflow, uri = connect()
    experiment_id = _experiment(mlflow, uri)
    end_orphaned_runs(experiment_id)
    exp_name = os.environ.get("DVC_EXP_NAME", "")
    dirty, changed = git_dirty()
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"{stage}{' ' + exp_name if exp_name else ''}"
    ) as run:
        mlflow.set_tags(
            {
                "stage": stage,
                "git_sha": git_sha(),
                "git_dirty": dirty,
                "git_dirty_files": ", ".join(changed)[:500],
                "dvc_exp_name": exp_name,
                "host": socket.gethostname(),
                "pid": str(os.getpid()),
            }
        )
        mlflow.log_params(flatten(params))
        yield StageRun(mlflow, run.info.run_id)


def _experiment(mlflow, uri: str) -> str:
    """The experiment's id, created if missing (artifacts beside mlflow.db for the default
    store, where the server says for another), tagged so the UI opens on its runs table."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        location = None  # a tracking server decides (e.g. `--artifacts-destination s3://...`)
        if uri.startswith("sqlite:///"):  # beside the database file
            location = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
        elif not uri.startswith(("http://", "https://")):
            location = (repo_root() / "mlartifacts").as_uri()
        try:
            experiment_id = client.create_experiment(EXPERIMENT, artifact_location=location)
        except mlflow.exceptions.MlflowException:  # created meanwhile by another process
            made = client.get_experiment_by_name(EXPERIMENT)
            if made is None:
                raise
            experiment_id = made.experiment_id
    else:
        experiment_id = experiment.experiment_id
    if experiment is None or experiment.tags.get(KIND_TAG[0]) != KIND_TAG[1]:
        client.set_experiment_tag(experiment_id, *KIND_TAG)
    return experiment_id

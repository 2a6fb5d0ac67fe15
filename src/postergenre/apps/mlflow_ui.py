"""mlflow-ui: the MLflow UI on this repository's runs, opened on the runs table (`make mlflow`).

MLflow 3's UI opens an experiment on its GenAI overview (traces, sessions) until a browser has
picked "Model training" once; the runs of `postergenre` are model training. This starts
`mlflow ui` on the repository's tracking store (MLFLOW_TRACKING_URI, or `mlflow.db`), waits until
it answers, and prints the address of the experiment's runs table last, which opens there in any
browser; the server's own start-up lines and warnings go to `.cache/mlflow-ui.log`.
No stage runs this module: changing it re-runs nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient

from postergenre.core.paths import repo_root
from postergenre.runtime import entry
from postergenre.runtime.tracking import EXPERIMENT, tracking_uri


def runs_table_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table (the `workflowType` parameter picks the model-training view)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?workflowType=machine_learning"


def experiment_id(uri: str) -> str:
    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise ValueError(f"no {EXPERIMENT!r} experiment in {uri} yet: run `dvc repro` first")
    return experiment.experiment_id


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (MLflow's default is 4; one serves one reader)",
    )


NEEDS_PARAMS = False


START_WAIT_S = 120  # how long the server may take to answer before this gives up


def wait_until_up(health: str, server: subprocess.Popen, log: Path) -> None:
    """Return once `health` answers; a server that exits or stays silent is an error quoting
    the end of its log."""
    deadline = time.monotonic() + START_WAIT_S
    while True:
        try:
            with urllib.request.urlopen(health, timeout=2):
                return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            state = f"exited ({server.returncode})" if server.poll() is not None else "did not answer"
            raise ValueError(f"mlflow ui {state}; the end of {log}:\n{tail}")
        time.sleep(0.5)


def run(args: argparse.Namespace, params: dict | None) -> None:
    uri = tracking_uri()
    url = runs_table_url(f"http://{args.host}:{args.port}", experiment_id(uri))
    probe = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    server_cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
    ]
    log = repo_root() / ".cache" / "mlflow-ui.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        server = subprocess.Popen(server_cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_until_up(f"http://{probe}:{args.port}/health", server, log)
            print(f"MLflow runs of this repository: {url}", flush=True)
            print(f"(the server's log: {log}; Ctrl-C stops it)", flush=True)
            code = server.wait()
        except KeyboardInterrupt:
            code = 130
        finally:
            if server.poll() is None:
                server.terminate()
                server.wait(timeout=30)
    raise SystemExit(code)


if __name__ == "__main__":
    sys.exit(entry.main("mlflow_ui", __doc__, add_arguments, run, needs_params=False))

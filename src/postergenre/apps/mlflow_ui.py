"""mlflow-ui: the MLflow UI on this repository's runs, opened on the runs table (`make mlflow`).

MLflow 3's UI opens an experiment on its GenAI overview (traces, sessions) until a browser has
picked "Model training" once; the runs of `postergenre` are model training. This starts
`mlflow ui` on the repository's tracking store (MLFLOW_TRACKING_URI, or `mlflow.db`) and prints
the address of the experiment's runs table, which opens there in any browser.
No stage runs this module: changing it re-runs nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from mlflow.tracking import MlflowClient

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


def run(args: argparse.Namespace, params: dict | None) -> None:
    uri = tracking_uri()
    url = runs_table_url(f"http://{args.host}:{args.port}", experiment_id(uri))
    print(f"MLflow runs of this repository: {url}", flush=True)
    server = [
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
    raise SystemExit(subprocess.call(server))


if __name__ == "__main__":
    sys.exit(entry.main("mlflow_ui", __doc__, add_arguments, run, needs_params=False))

"""The MLflow model registry: each method's models, their versions, the splits they saw.

- train logs the saved model folder as a pyfunc model named after its method (MLflow 3's logged
  models), tagged with the folder's content hash; a folder whose hash is already logged is
  referenced by the new run (no second copy of its files in the artifact store);
- the model is registered as `postergenre-<method>`, with a new version whenever the trained
  folder differs from the latest version's, so MLflow's own `@latest` (a reserved alias: the
  highest version) is the model the repository last trained;
- evaluate attaches its metrics to that logged model (on the `dev` and `test` datasets);
- the report stage moves the alias `champion` to the method with the best dev mAP (of those
  whose dev scores are held out: not the ensemble, which is fitted on dev);
- train and evaluate runs log the train/dev/test splits as dataset inputs, each with its
  content hash (sha256 of its ids and genres) as the digest.

    mlflow models serve -m models:/postergenre-head@champion --env-manager local
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.data.pandas_dataset import PandasDataset, from_pandas
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.tracking import MlflowClient

from postergenre.core import dataset, paths
from postergenre.core.paths import repo_root
from postergenre.runtime.serving import REQUIREMENTS, log_pyfunc
from postergenre.runtime.tracking import folder_sha256

log = logging.getLogger(__name__)

CHAMPION = "champion"
SPLITS = ("train", "dev", "test")
DIGEST_CHARS = 32  # MLflow's dataset digest column holds 36 characters: a 128-bit prefix of sha256


def registered_name(method: str) -> str:
    return f"postergenre-{method}"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(names: tuple[str, ...] = REQUIREMENTS, lock: Path | None = None) -> list[str]:
    """`name==version` for each package the pyfunc model needs, as requirements.lock pins it."""
    lock = lock or repo_root() / "requirements.lock"
    if not lock.is_file():
        raise FileNotFoundError(f"{lock}: the pins the logged model's requirements come from")
    pins: dict[str, str] = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        found = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if found:
            pins[_normal(found[1])] = found[2]
    missing = [n for n in names if _normal(n) not in pins]
    if missing:
        raise ValueError(f"{lock} pins no version of {', '.join(missing)}: run `make lock`")
    return [f"{n}=={pins[_normal(n)]}" for n in names]


def split_datasets(split_dir: Path | None = None, interim: Path | None = None) -> dict[str, PandasDataset]:
    """The train/dev/test splits as MLflow datasets: one row per movie (id, genres), the digest
    a prefix of the sha256 of those rows, the source the split's id file."""
    split_dir = split_dir or paths.split()
    labels = dataset.read_labels(interim)
    out = {}
    for name in SPLITS:
        file = split_dir / f"{name}.txt"
        ids = file.read_text(encoding="utf-8").split()
        genres = ["|".join(labels[i]) for i in ids]
        rows = "".join(f"{i}\t{g}\n" for i, g in zip(ids, genres, strict=True))
        digest = hashlib.sha256(rows.encode()).hexdigest()
        frame = pd.DataFrame({"id": ids, "genres": genres})
        with warnings.catch_warnings():  # MLflow registers its local-file source twice ("" and file://)
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            out[name] = from_pandas(
                frame, source=str(file.resolve()), name=name, digest=digest[:DIGEST_CHARS]
            )
    return out


def logged_model_of(model_sha256: str, experiment_id: str) -> Any | None:
    """The newest READY logged model of this content hash in the experiment, or None."""
    found = mlflow.search_logged_models(
        experiment_ids=[experiment_id],
        filter_string=f"tags.model_sha256 = '{model_sha256}'",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
        output_format="list",
    )
    return next((m for m in found if m.status == LoggedModelStatus.READY), None)


def _latest_version(client: MlflowClient, name: str):
    versions = client.search_model_versions(
        f"name = '{name}'", max_results=1, order_by=["version_number DESC"]
    )
    return versions[0] if versions else None


def log_trained_model(method: str, model_dir: str | Path, run_id: str) -> dict[str, str]:
    """Log (or reference) the saved model folder and register it; log the splits as the run's
    inputs. Returns the run tags that say which model and version it is."""
    client = MlflowClient()
    experiment_id = client.get_run(run_id).info.experiment_id
    digest = folder_sha256(model_dir)
    tags = {"model_sha256": digest, "method": method}
    model = logged_model_of(digest, experiment_id)
    if model is None:
        info = log_pyfunc(model_dir, name=method, tags=tags, pip_requirements=pinned_requirements())
        model_id, reused = info.model_id, False
    else:  # the same bytes were logged before: this run produced that model again
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        model_id, reused = model.model_id, True
        log.info("MLflow: model %s (%s) already logged; referenced, not copied", model_id, digest[:12])
    datasets = split_datasets()
    mlflow.log_inputs(datasets=[datasets[s] for s in SPLITS], contexts=list(SPLITS), tags_list=[None] * 3)
    name = registered_name(method)
    latest = _latest_version(client, name)
    if latest is None or latest.tags.get("model_sha256") != digest:
        version = mlflow.register_model(f"models:/{model_id}", name, tags={"model_sha256": digest}).version
        log.info("MLflow: registered %s version %s", name, version)
    else:
        version = latest.version
    return {
        "pyfunc_uri": f"models:/{model_id}",
        "model_id": model_id,
        "model_reused": str(reused).lower(),
        "registered_model": f"{name}/{version}",
    }


def log_evaluation(model_sha256: str, run_id: str, metrics: dict[str, dict[str, float]]) -> str | None:
    """Attach an evaluate run's metrics to the logged model of this hash, each split's on its
    dataset (`{"dev": {...}, "test": {...}}`); return the model's id (None: never logged here)."""
    client = MlflowClient()
    experiment_id = client.get_run(run_id).info.experiment_id
    model = logged_model_of(model_sha256, experiment_id)
    datasets = split_datasets()
    mlflow.log_inputs(
        datasets=[datasets[s] for s in metrics], contexts=list(metrics), tags_list=[None] * len(metrics)
    )
    if model is None:
        log.info("MLflow: no logged model has hash %s; metrics not attached", model_sha256[:12])
        return None
    for split, values in metrics.items():
        mlflow.log_metrics(
            {f"{split}.{k}": v for k, v in values.items()}, model_id=model.model_id, dataset=datasets[split]
        )
    return model.model_id


def crown(dev_map: dict[str, float]) -> str | None:
    """Move the `champion` alias to the latest version of the method with the best dev mAP
    (`{method: dev mAP}`), off every other method's model; return that method."""
    client = MlflowClient()
    registered = {}
    for method in dev_map:
        latest = _latest_version(client, registered_name(method))
        if latest is not None:
            registered[method] = latest
    if not registered:
        log.info("MLflow: no method's model is registered; no champion")
        return None
    best = max(registered, key=lambda m: dev_map[m])
    for method, latest in registered.items():
        name = registered_name(method)
        if method == best:
            client.set_registered_model_alias(name, CHAMPION, latest.version)
        elif CHAMPION in client.get_registered_model(name).aliases:
            client.delete_registered_model_alias(name, CHAMPION)
    log.info(
        "MLflow: %s is the champion (dev mAP %.4f): models:/%s@%s",
        best,
        dev_map[best],
        registered_name(best),
        CHAMPION,
    )
    return best

"""MLflow: a stage killed mid-run does not leave its run RUNNING forever; the UI opens on the runs;
the registry holds each method's models, versions, aliases and the splits they saw."""

import base64
import csv
import hashlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import BIN, REPO, chromium, free_port, server, tracking_uri


def test_a_killed_stage_run_is_marked_killed_by_the_next_one(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from postergenre.runtime import tracking

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", db)
    killed = (
        "import os, signal\n"
        "from postergenre.runtime.tracking import stage_run\n"
        "with stage_run('train-x', {'seed': 1}):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", killed],
        cwd=REPO,
        capture_output=True,
        env={"MLFLOW_TRACKING_URI": db, "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == -9
    client = MlflowClient(tracking_uri=db)
    experiment = client.get_experiment_by_name("postergenre")
    (orphan,) = client.search_runs([experiment.experiment_id])
    assert orphan.info.status == "RUNNING"
    with tracking.stage_run("evaluate-x", {"seed": 1}):
        pass
    runs = {r.data.tags["stage"]: r for r in client.search_runs([experiment.experiment_id])}
    assert runs["train-x"].info.status == "KILLED"
    assert "was gone" in runs["train-x"].data.tags["ended_by"]
    assert runs["evaluate-x"].info.status == "FINISHED"


def test_make_mlflow_opens_the_runs_table_in_a_real_browser(tmp_path, monkeypatch):
    """`python -m postergenre.apps.mlflow_ui` (make mlflow) serves the store on 127.0.0.1 and prints
    an address that headless Chromium renders as the runs table, evaluate runs under train."""
    import os
    import signal
    import time
    import urllib.request

    from postergenre.runtime import tracking

    browser_binary = chromium()
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", db)
    with tracking.stage_run("train-probe", {"seed": 1}) as train:
        train.set_tags({"model_sha256": "abc"})
    with tracking.stage_run("evaluate-probe", {"seed": 1}) as evaluate:
        assert evaluate.link_to_training("train-probe", "abc") == train.run_id
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "postergenre.apps.mlflow_ui", "--port", str(port)],
        cwd=REPO,
        env={**os.environ, "MLFLOW_TRACKING_URI": db},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        line = server.stdout.readline()
        url = line.split(": ", 1)[1].strip()
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/")
        deadline = time.monotonic() + 60
        while True:  # bounded wait for the server
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "mlflow ui did not start in 60 s"
                time.sleep(0.5)
        browser = [
            browser_binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1400,900",
            "--virtual-time-budget=30000",
        ]
        # one page load gives both: the DOM as rendered and a picture of it
        dom = subprocess.run(
            [*browser, "--dump-dom", f"--screenshot={tmp_path / 'runs.png'}", url],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert "<title>Runs - Experiment" in dom
    assert "train-probe" in dom and "Overview - Experiment" not in dom
    assert (tmp_path / "runs.png").stat().st_size > 20_000


# -- the model registry, on the shared pipeline run ----------------------------------------------


def _client(project):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(project))


def _details(project) -> dict[str, dict]:
    files = sorted((project / "metrics" / "details").glob("*.json"))
    return {p.stem: json.loads(p.read_text()) for p in files}


def _split_digest(project, name: str) -> str:
    """sha256 of the split's `id<TAB>genres` rows, computed here from the files themselves."""
    genres = {}
    with open(project / "data" / "interim" / "movies.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            genres[row["id"]] = row["genres"]
    ids = (project / "data" / "split" / f"{name}.txt").read_text().split()
    rows = "".join(f"{i}\t{'|'.join(g for g in genres[i].split('|') if g)}\n" for i in ids)
    return hashlib.sha256(rows.encode()).hexdigest()


def test_each_method_is_a_named_registered_model_with_its_evaluation_attached(project):
    """Every method's model is logged under its name, registered as postergenre-<method> (a
    version per changed folder, tagged with its hash), carries its evaluate run's dev and test
    metrics, was trained on the three splits (dataset inputs, digest = their content hash), pins
    requirements.lock's versions; `champion` is on the best dev mAP's model alone."""
    from postergenre.runtime.registry import pinned_requirements
    from postergenre.runtime.tracking import folder_sha256

    client = _client(project)
    details = _details(project)
    assert {"baseline", "mlknn", "ovr", "custom", "resnet34", "head", "mlknn_features", "ensemble"} <= set(
        details
    )
    digests = {s: _split_digest(project, s)[:32] for s in ("train", "dev", "test")}
    for method, result in details.items():
        versions = sorted(
            client.search_model_versions(f"name = 'postergenre-{method}'"), key=lambda v: int(v.version)
        )
        hashes = [v.tags["model_sha256"] for v in versions]
        assert all(a != b for a, b in itertools.pairwise(hashes)), method  # a version per change
        digest = folder_sha256(project / "models" / method)
        version = [v for v in versions if v.tags["model_sha256"] == digest][-1]
        model = client.get_logged_model(version.source.removeprefix("models:/"))
        assert model.name == method and model.tags["model_sha256"] == version.tags["model_sha256"]
        attached = {(m.key, m.dataset_name): m.value for m in model.metrics}
        for split in ("dev", "test"):
            assert attached[(f"{split}.scores.mAP", split)] == result[split]["scores"]["mAP"], method
            if "decided" in result[split]:  # the methods with an operating point (not the coin flip)
                assert attached[(f"{split}.decided.micro_f1", split)] == result[split]["decided"]["micro_f1"]
        train = client.get_run(model.source_run_id)
        inputs = {d.dataset.name: d.dataset.digest for d in train.inputs.dataset_inputs}
        assert inputs == digests, method
    model_dir = Path(
        client.get_logged_model(version.source.removeprefix("models:/")).artifact_location.removeprefix(
            "file://"
        )
    )
    pins = (model_dir / "requirements.txt").read_text().split()
    assert pins == pinned_requirements(lock=REPO / "requirements.lock")
    assert "torch==2.14.1" in pins
    held_out = [m for m in details if details[m]["data"]["trained_on"].get("split") != "dev"]
    assert "ensemble" not in held_out and "head" in held_out
    best = max(held_out, key=lambda m: details[m]["dev"]["scores"]["mAP"])
    crowned = [m for m in details if "champion" in client.get_registered_model(f"postergenre-{m}").aliases]
    assert crowned == [best]


def test_mlflow_models_serve_answers_with_the_scores_predict_gives(project):
    """`mlflow models serve -m models:/postergenre-<champion>@champion` on 127.0.0.1 scores a
    poster sent as a data URI exactly as `postergenre predict` scores its file."""
    import urllib.request

    from postergenre.apps.predict import predict_posters

    client = _client(project)
    details = _details(project)
    (champion,) = [
        m for m in details if "champion" in client.get_registered_model(f"postergenre-{m}").aliases
    ]
    poster = sorted((project / "data" / "raw" / "synthetic" / "posters").glob("*.jpg"))[0]
    expected = predict_posters(project / "models" / champion, [str(poster)], top_k=1)
    assert client.get_model_version_by_alias(f"postergenre-{champion}", "champion")
    port = free_port()
    serve = [
        str(BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        f"models:/postergenre-{champion}@champion",
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {"MLFLOW_TRACKING_URI": tracking_uri(project), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    uri = "data:image/jpeg;base64," + base64.b64encode(poster.read_bytes()).decode()
    body = {"dataframe_split": {"columns": ["poster"], "data": [[uri], ["data:image/jpeg;base64,@@"]]}}
    with server(serve, f"http://127.0.0.1:{port}/ping", env, cwd=project, wait_s=120):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as reply:
            answer = json.loads(reply.read())
    served, broken = answer["predictions"]
    (scores,) = [p["scores"] for p in expected["predictions"]]
    assert served.keys() == scores.keys()
    assert all(abs(served[g] - scores[g]) < 1e-6 for g in scores), (served, scores)
    assert all(v is None or v != v for v in broken.values())  # NaN: a data URI that does not decode

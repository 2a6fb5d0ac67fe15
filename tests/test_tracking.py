"""MLflow runs: a stage killed mid-run does not leave its run RUNNING forever."""

import subprocess
import sys

from tests.conftest import REPO, chromium


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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = _free_port()
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

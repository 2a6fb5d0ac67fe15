"""MLflow runs: a stage killed mid-run does not leave its run RUNNING forever."""

import subprocess
import sys

from tests.conftest import REPO


def test_a_killed_stage_run_is_marked_failed_by_the_next_one(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from postergenre import tracking

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", db)
    killed = ("import os, signal\n"
              "from postergenre.tracking import stage_run\n"
              "with stage_run('train-x', {'seed': 1}):\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    out = subprocess.run([sys.executable, "-c", killed], cwd=REPO, capture_output=True,
                         env={"MLFLOW_TRACKING_URI": db, "PATH": "/usr/bin:/bin"})
    assert out.returncode == -9
    client = MlflowClient(tracking_uri=db)
    experiment = client.get_experiment_by_name("postergenre")
    (orphan,) = client.search_runs([experiment.experiment_id])
    assert orphan.info.status == "RUNNING"
    with tracking.stage_run("evaluate-x", {"seed": 1}):
        pass
    runs = {r.data.tags["stage"]: r for r in client.search_runs([experiment.experiment_id])}
    assert runs["train-x"].info.status == "FAILED"
    assert "was gone" in runs["train-x"].data.tags["ended_by"]
    assert runs["evaluate-x"].info.status == "FINISHED"

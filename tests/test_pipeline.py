"""The whole DAG through DVC itself, in a scratch copy of the repository, on tiny synthetic data."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def tracking_uri(project: Path) -> str:
    return f"sqlite:///{project / 'mlflow.db'}"


def run(args, cwd, check=True):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "CI": "1",
           "MLFLOW_TRACKING_URI": tracking_uri(cwd)}
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and out.returncode != 0:
        raise AssertionError(f"{args} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    if shutil.which("dvc", path=str(BIN)) is None:
        pytest.skip("dvc is not installed beside this Python")
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", ".dvcignore", "pyproject.toml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["synthetic"]["n"] = 160
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run(["git", "config", "user.email", "t@example.com"], root)
    run(["git", "config", "user.name", "test"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    run(["dvc", "repro"], root)
    return root


def test_repro_writes_metrics_with_the_all_zeros_predictor_beside(project):
    metrics = json.loads((project / "metrics" / "baseline.json").read_text())
    test = metrics["test"]
    assert set(test) == {"model", "all_zeros"}
    for name in ("all_match", "at_least_one_match", "binary_accuracy", "hamming_loss",
                 "micro_f1", "macro_f1", "samples_f1"):
        assert 0.0 <= test["model"][name] <= 1.0
    assert test["all_zeros"]["micro_f1"] == 0.0
    assert test["model"]["at_least_one_match"] > test["all_zeros"]["at_least_one_match"]
    assert metrics["n_test"] >= 10


def test_second_repro_is_up_to_date(project):
    out = run(["dvc", "status"], project)
    assert "up to date" in out.stdout


def test_forced_repro_gives_byte_identical_metrics(project):
    before = (project / "metrics" / "baseline.json").read_bytes()
    run(["dvc", "repro", "--force"], project)
    assert (project / "metrics" / "baseline.json").read_bytes() == before


def test_each_train_and_evaluate_logs_one_mlflow_run(project):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(project))
    experiment = client.get_experiment_by_name("postergenre")
    runs = client.search_runs([experiment.experiment_id])
    stages = sorted(r.data.tags["stage"] for r in runs)
    # one `dvc repro` and one `dvc repro --force` (if that test ran first) each log both stages
    assert set(stages) == {"train@baseline", "evaluate@baseline"}
    assert stages.count("train@baseline") == stages.count("evaluate@baseline")
    run_ = next(r for r in runs if r.data.tags["stage"] == "evaluate@baseline")
    assert len(run_.data.tags["git_sha"]) == 40
    assert "dvc_exp_name" in run_.data.tags
    assert run_.data.params["methods.baseline.size"] == "64x64"
    assert "test.model.micro_f1" in run_.data.metrics


def test_misspelt_key_from_exp_run_fails_with_its_name(project):
    # DVC refuses `-S data.sorce=...` itself; `+data.sorce=...` adds the key, which we refuse.
    out = run(["dvc", "exp", "run", "-S", "+data.sorce=tmdb"], project, check=False)
    assert out.returncode != 0
    assert "unknown key 'data.sorce'" in out.stdout + out.stderr

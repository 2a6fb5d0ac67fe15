"""Working as a team: a DVC remote on a real S3-protocol server, experiments that travel through a
git server, and a real MLflow tracking server with its artifacts on S3.

Every server here is started by these fixtures on 127.0.0.1 at a free port (moto's server mode
for S3, `mlflow server`, a bare git repository for the git server) and stopped after.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.conftest import BIN, REPO, free_port, out_of_date, run, server, stages_run

CREDS = {
    "AWS_ACCESS_KEY_ID": "team-key",
    "AWS_SECRET_ACCESS_KEY": "team-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def s3_server(*flags: str):
    port = free_port()
    with server(
        [sys.executable, str(REPO / "tests" / "s3server.py"), "--port", str(port), *flags],
        f"http://127.0.0.1:{port}/",
        CREDS,
    ) as url:
        yield url.rstrip("/")


def bucket(endpoint: str, name: str):
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=name)
    return s3


def objects(s3, name: str) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=name)
    return sum(page.get("KeyCount", 0) for page in pages)


def add_remote(repo: Path, name: str, url: str, endpoint: str, default: bool = False) -> None:
    run(["dvc", "remote", "add", "-f", *(["-d"] if default else []), name, url], repo)
    run(["dvc", "remote", "modify", name, "endpointurl", endpoint], repo)


@pytest.fixture(scope="module")
def s3():
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def team(project, s3, tmp_path_factory):
    """Clone A: the project after its `dvc repro`, with an S3 remote in its committed config,
    pushed; and a bare repository standing for the team's git server, A's branch pushed to it."""
    root = tmp_path_factory.mktemp("team")
    a = root / "a"
    shutil.copytree(project, a, symlinks=True, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    bucket(s3, "team")
    add_remote(a, "storage", "s3://team/dvc", s3, default=True)
    run(["git", "add", ".dvc/config"], a)
    run(["git", "commit", "-qm", "the team's S3 remote"], a)
    started = time.perf_counter()
    run(["dvc", "push"], a, env=CREDS)
    push_s = time.perf_counter() - started
    origin = root / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], root)
    branch = run(["git", "rev-parse", "--abbrev-ref", "HEAD"], a).stdout.strip()
    run(["git", "remote", "add", "origin", str(origin)], a)
    run(["git", "push", "-q", "origin", branch], a)
    return {"a": a, "origin": origin, "branch": branch, "root": root, "push_s": push_s}


def test_a_second_clone_pulls_everything_and_recomputes_nothing(team, tmp_path):
    b = tmp_path / "b"
    started = time.perf_counter()
    run(["git", "clone", "-q", str(team["origin"]), str(b)], tmp_path)
    run(["dvc", "pull"], b, env=CREDS)
    status = out_of_date(b)
    repro = run(["dvc", "repro"], b)
    seconds = time.perf_counter() - started
    assert status == set()
    assert stages_run(repro.stdout) == set()  # tidy alone ran, as on every repro
    assert run(["git", "status", "--porcelain"], b).stdout == ""  # and the clone stays clean
    print(
        f"\nsecond clone, git clone to up to date: {seconds:.1f} s (dvc push from A: {team['push_s']:.1f} s)"
    )
    # the second clone's models give the first clone's scores, to the digit (`postergenre
    # predict` is this function; tests/test_pipeline.py runs the command)
    from postergenre.apps.predict import predict_posters

    poster = team["a"] / "data" / "raw" / "synthetic" / "posters" / "1.jpg"
    for method in ("custom", "head", "mlknn"):
        got = [
            predict_posters(repo / "models" / method, [poster])["predictions"][0]["scores"]
            for repo in (team["a"], b)
        ]
        assert got[0] == got[1], method
    assert (b / "metrics" / "head.json").read_bytes() == (team["a"] / "metrics" / "head.json").read_bytes()


def test_a_killed_push_rerun_leaves_the_remote_complete(team, tmp_path):
    a = team["a"]
    with s3_server("--put-delay", "0.03") as slow:
        s3 = bucket(slow, "slow")
        add_remote(a, "slow", "s3://slow/dvc", slow)
        try:
            path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
            push = subprocess.Popen(
                ["dvc", "push", "-r", "slow", "-j", "1"],
                cwd=a,
                env={**os.environ, **CREDS, "PATH": path},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 120
            while objects(s3, "slow") < 5:
                assert push.poll() is None, "the push ended before it could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.05)
            os.killpg(push.pid, signal.SIGKILL)
            push.wait(timeout=30)
            half = objects(s3, "slow")
            incomplete = run(["dvc", "status", "-c", "-r", "slow"], a, env=CREDS).stdout
            assert "new:" in incomplete  # the kill left files to push
            run(["dvc", "push", "-r", "slow"], a, env=CREDS)
            complete = run(["dvc", "status", "-c", "-r", "slow"], a, env=CREDS).stdout
            assert "Cache and remote 'slow' are in sync" in complete
            assert objects(s3, "slow") > half
        finally:
            run(["dvc", "remote", "remove", "slow"], a)


def test_an_experiment_travels_through_the_git_server_and_the_remote(team, tmp_path):
    a, branch = team["a"], team["branch"]
    # ML-kNN on the 2:3 pixels: an experiment of two stages (and the report), cheap to run here
    run(["dvc", "exp", "run", "-n", "tall", "-S", "methods.mlknn.size=100x150"], a, env=CREDS)
    run(["git", "checkout", "--", "."], a)
    run(["dvc", "checkout", "-q"], a)
    run(["dvc", "exp", "push", "origin", "tall"], a, env=CREDS)  # the git ref and its outputs

    b = tmp_path / "b"
    run(["git", "clone", "-q", str(team["origin"]), str(b)], tmp_path)
    run(["dvc", "exp", "pull", "origin", "tall"], b, env=CREDS)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], b).stdout)
    exps = {
        rev["name"]: rev
        for state in shown
        for group in state.get("experiments") or []
        for rev in group["revs"]
    }
    params = exps["tall"]["data"]["params"]["params.yaml"]["data"]
    assert params["methods"]["mlknn"]["size"] == "100x150"
    assert "mAP" in exps["tall"]["data"]["metrics"]["metrics/mlknn.json"]["data"]
    run(["dvc", "exp", "apply", "tall"], b, env=CREDS)
    assert out_of_date(b) == set()
    diff = json.loads(run(["dvc", "metrics", "diff", branch, "--json"], b).stdout)
    changed = {path for path, rows in diff.items() if any(r.get("diff") for r in rows.values())}
    assert changed == {"metrics/mlknn.json"}
    # the model came from the remote: the experiment's mlknn reads 100x150
    card = json.loads((b / "models" / "mlknn" / "model.json").read_text())
    assert card["size"] == "100x150"


@pytest.mark.parametrize("problem", ["unreachable", "missing bucket", "wrong credentials"])
def test_a_bad_remote_is_named_in_seconds(team, s3, tmp_path, problem):
    """`postergenre check-remote` (what `make push`/`make pull` run first) says which problem it
    is within seconds; `dvc pull` itself fails too, given time (an endpoint where nothing
    listens keeps it retrying for many minutes, which is why the check exists)."""
    b = tmp_path / "b"
    run(["git", "clone", "-q", str(team["origin"]), str(b)], tmp_path)
    with ExitStack() as stack:
        endpoint, url = s3, "s3://team/dvc"
        if problem == "unreachable":
            endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        elif problem == "missing bucket":
            url = "s3://no-such-bucket/dvc"
        else:
            endpoint = stack.enter_context(s3_server("--deny-all"))
        add_remote(b, "storage", url, endpoint, default=True)  # -f: over the committed one
        started = time.perf_counter()
        out = run(["postergenre", "check-remote"], b, check=False, env=CREDS, timeout=60)
        seconds = time.perf_counter() - started
        if problem != "unreachable":
            pull = run(["dvc", "pull"], b, check=False, env=CREDS, timeout=240)
            assert pull.returncode != 0
            assert re.search(
                r"NoSuchBucket|InvalidAccessKeyId|403|does not exist",
                pull.stdout + pull.stderr,
                re.IGNORECASE,
            )
    assert out.returncode == 2 and seconds < 30
    expected = {
        "unreachable": "no answer from the server",
        "missing bucket": "the bucket 'no-such-bucket' does not exist",
        "wrong credentials": "the credentials were refused",
    }[problem]
    assert "remote 'storage'" in out.stderr and expected in out.stderr, out.stderr


def test_check_remote_accepts_a_good_remote(team):
    out = run(["postergenre", "check-remote"], team["a"], env=CREDS, timeout=60)
    assert "reachable, bucket 'team' there, credentials accepted" in out.stderr


def test_a_real_mlflow_server_keeps_runs_and_artifacts_on_s3(team, s3, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from postergenre.apps.predict import predict_posters

    a = team["a"]
    store = bucket(s3, "mlflow")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    mlflow_server = [
        str(BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--artifacts-destination",
        "s3://mlflow/artifacts",
        "--workers",
        "1",
    ]
    with server(mlflow_server, f"{uri}/health", {**CREDS, "MLFLOW_S3_ENDPOINT_URL": s3}):
        env = {"MLFLOW_TRACKING_URI": uri, "DVC_EXP_NAME": "server-check"}  # no S3 keys: proxied
        model, plots = tmp_path / "model", tmp_path / "plots"
        run(
            [
                "python",
                "-m",
                "postergenre.pipeline.train",
                "mlknn",
                "--out",
                str(model),
                "--plots",
                str(plots),
            ],
            a,
            env=env,
        )
        run(
            [
                "python",
                "-m",
                "postergenre.pipeline.evaluate",
                "mlknn",
                "--model",
                str(model),
                "--out",
                str(tmp_path / "metrics" / "mlknn.json"),
                "--plots",
                str(plots),
            ],
            a,
            env=env,
        )
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("postergenre")
        runs = {r.data.tags["stage"]: r for r in client.search_runs([experiment.experiment_id])}
        train, evaluate = runs["train-mlknn"], runs["evaluate-mlknn"]
        for r in (train, evaluate):
            assert r.data.params["k"] == "10" and r.data.params["data.source"] == "synthetic"
            assert len(r.data.tags["git_sha"]) == 40 and r.data.tags["dvc_exp_name"] == "server-check"
        assert evaluate.data.metrics["test.scores.mAP"] > 0
        assert evaluate.data.tags["train_run_id"] == train.info.run_id
        assert {a.path for a in client.list_artifacts(train.info.run_id, "model")} == {"model/model.json"}
        assert "plots/pr_curves.png" in {a.path for a in client.list_artifacts(evaluate.info.run_id, "plots")}
        keys = [o["Key"] for o in store.list_objects_v2(Bucket="mlflow")["Contents"]]
        assert any(k.endswith("plots/pr_curves.png") for k in keys)
        assert any(k.endswith("model/model.json") for k in keys)
        # the logged model predicts posters as `postergenre predict` does
        mlflow.set_tracking_uri(uri)
        pyfunc = mlflow.pyfunc.load_model(train.data.tags["pyfunc_uri"])
        posters = [str(a / "data" / "raw" / "synthetic" / "posters" / f"{i}.jpg") for i in (1, 2, 3)]
        import pandas as pd

        scores = pyfunc.predict(pd.DataFrame({"poster": posters}))
        expected = predict_posters(model, posters)
        for row, p in zip(scores.to_dict("records"), expected["predictions"], strict=True):
            assert row == pytest.approx(p["scores"], abs=0)


def test_a_stage_fails_by_name_when_the_tracking_server_is_down(team, tmp_path):
    started = time.perf_counter()
    out = run(
        [
            "python",
            "-m",
            "postergenre.pipeline.train",
            "baseline",
            "--out",
            str(tmp_path / "m"),
            "--plots",
            str(tmp_path / "p"),
        ],
        team["a"],
        check=False,
        timeout=120,
        env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"},
    )
    assert out.returncode == 2 and time.perf_counter() - started < 60
    assert "MLflow tracking server http://127.0.0.1:" in out.stderr
    assert "does not answer" in out.stderr and not (tmp_path / "m").exists()

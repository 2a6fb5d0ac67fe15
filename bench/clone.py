"""A colleague's second clone against computing everything: the reason to push to a remote.

In a scratch folder: clone this repository (A) and time a full `dvc repro` there (the reference:
what a clone without a remote must do); push A's outputs to an S3-protocol server on 127.0.0.1
(moto, tests/s3server.py); then time a second clone (B) from `git clone` to "everything up to
date": `dvc pull`, `dvc status`, `dvc repro` running no stage. Prints both and their ratio.

    python bench/clone.py          # about 4 minutes on 2 cores for the default synthetic data
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CREDS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def sh(args, cwd, **env) -> str:
    full = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "CI": "1",
        **CREDS,
        "PYTHONPATH": str(Path(cwd) / "src"),
        **env,
    }
    out = subprocess.run(args, cwd=cwd, env=full, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{args} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return out.stdout


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-clone-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "s3server.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError as exc:
                if getattr(exc, "code", None):
                    break
                time.sleep(0.2)
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket="bench")
        a, b = root / "a", root / "b"
        sh(["git", "clone", "-q", str(REPO), str(a)], root)
        db = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
        started = time.perf_counter()
        sh(["dvc", "repro"], a, **db)
        repro_s = time.perf_counter() - started
        sh(["dvc", "remote", "add", "-d", "storage", "s3://bench/dvc"], a)
        sh(["dvc", "remote", "modify", "storage", "endpointurl", endpoint], a)
        sh(["git", "-c", "user.name=bench", "-c", "user.email=b@example.com", "commit", "-qam", "remote"], a)
        started = time.perf_counter()
        sh(["dvc", "push"], a)
        push_s = time.perf_counter() - started
        started = time.perf_counter()
        sh(["git", "clone", "-q", str(a), str(b)], root)
        sh(["dvc", "pull"], b)
        status = sh(["dvc", "status"], b)
        repro = sh(["dvc", "repro"], b, **db)
        clone_s = time.perf_counter() - started
        assert "Data and pipelines are up to date." in status, status
        assert "Running stage" not in repro, repro
        print(f"full dvc repro (no remote):              {repro_s:7.1f} s")
        print(f"dvc push of its outputs:                 {push_s:7.1f} s")
        print(f"second clone: git clone to up to date:   {clone_s:7.1f} s")
        print(f"ratio, full repro / second clone:        {repro_s / clone_s:7.1f}x")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

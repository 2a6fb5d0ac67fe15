"""Shared fixtures: tiny posters and source folders made by the tests themselves."""

from __future__ import annotations

import copy
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

# Two workers each running 2-thread torch on 2 cores: OpenMP's threads sleep while they wait
# instead of spinning (the numbers do not change; the head's training tests ran 2x faster).
# Set before anything imports torch; the pipeline's processes the tests start inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SHARED_DATA = Path(os.environ.get("POSTERGENRE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_data(sub: str) -> Path:
    """A folder of ../shared/data, or a clean skip where this machine does not have it."""
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(
            f"real data not here: {path} is absent (set POSTERGENRE_SHARED_DATA to the "
            "folder holding movielens-posters/ and tmdb-sample/)"
        )
    return path


# what .ci/run does where chromium is missing; `make test` refuses to start without it
CHROMIUM_INSTALL = "sudo apt-get install -y --no-install-recommends chromium"


def chromium() -> str:
    """Debian's chromium, which the browser tests drive headless (never a downloaded build):
    a failure naming the install command under `make test` and CI, a skip saying so elsewhere."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = f"the browser tests need Debian's chromium: {CHROMIUM_INSTALL}"
    if os.environ.get("CI") or os.environ.get("POSTERGENRE_BROWSER_TESTS") == "required":
        raise AssertionError(message)
    pytest.skip(message)


def jpeg_bytes(width: int = 30, height: int = 45, color=(200, 40, 40), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_poster(path: Path, width: int = 30, height: int = 45, color=(200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(width, height, color))
    return path


@pytest.fixture
def default_params() -> dict:
    return copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))


@pytest.fixture(autouse=True)
def _mlflow_to_tmp(tmp_path_factory, monkeypatch):
    """No test writes to the repository's own mlflow.db."""
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


BIN = Path(sys.executable).parent


def tracking_uri(project: Path) -> str:
    return f"sqlite:///{project / 'mlflow.db'}"


def run(args, cwd, check=True, env=None, timeout=600):
    """A command in a scratch project, running that project's own copy of the code."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "CI": "1",
        "MLFLOW_TRACKING_URI": tracking_uri(cwd),
        "PYTHONPATH": str(Path(cwd) / "src"),
        **(env or {}),
    }
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{args} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


# -- servers the tests start on 127.0.0.1 ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error answer: the server is up
                return
            assert time.monotonic() < deadline, f"{url} did not answer in {seconds} s"
            time.sleep(0.3)


@contextmanager
def server(args: list[str], url: str, env: dict | None = None, cwd=None, wait_s: float = 60):
    """A server process for the length of a `with`, once `url` answers; its output is quoted
    if it never does."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        try:
            wait_for(url, wait_s)
        except AssertionError as exc:
            log.seek(0)
            output = log.read().decode(errors="replace")[-3000:]
            raise AssertionError(f"{exc}; its output:\n{output}") from None
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        log.close()


# dvc.yaml's stage that runs on every repro (always_changed), so `dvc status` always lists it
ALWAYS_RUN = {"tidy"}


def out_of_date(project: Path) -> set[str]:
    """The stages `dvc status` says are out of date, less the one that runs every time: what the
    command prints, asked of DVC in this process (tests/test_pipeline.py runs the command), which
    saves each of the many checks the command's start-up (about 1 s)."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        stale = repo.status()  # named as from this process's folder: "<path>/dvc.yaml:<stage>"
    return {name.rsplit(":", 1)[-1] for name in stale} - ALWAYS_RUN


def stages_run(output: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran, less the every-time one."""
    return {
        line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")
    } - ALWAYS_RUN


def scratch_project(root: Path, edit_params=None) -> Path:
    """A git + DVC repository with this one's code, dvc.yaml and params (160 synthetic posters,
    one epoch for the custom CNN), not yet run."""
    for name in ("dvc.yaml", ".dvcignore", "pyproject.toml", ".gitignore", "requirements.lock"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["synthetic"]["n"] = 160
    params["methods"]["custom"]["epochs"] = 1
    if edit_params:
        edit_params(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run(["git", "config", "user.email", "t@example.com"], root)
    run(["git", "config", "user.name", "test"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")  # the plot templates
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    return root


def _relocate(root: Path, old: Path) -> None:
    """A copied project names itself: MLflow keeps absolute artifact paths in its database and
    in each logged model's MLmodel file."""
    import sqlite3

    before, after = str(old), str(root)
    with sqlite3.connect(root / "mlflow.db") as db:
        for (table,) in db.execute("select name from sqlite_master where type = 'table'").fetchall():
            for column in db.execute(f"pragma table_info('{table}')").fetchall():
                if column[2].upper() in ("TEXT", "VARCHAR") or column[2].upper().startswith("VARCHAR"):
                    db.execute(
                        f'update "{table}" set "{column[1]}" = replace("{column[1]}", ?, ?) '
                        f'where instr("{column[1]}", ?) > 0',
                        (before, after, before),
                    )
    for mlmodel in (root / "mlartifacts").rglob("MLmodel"):
        mlmodel.write_text(mlmodel.read_text().replace(before, after))


def _shared_folder(tmp_path_factory) -> Path:
    """The test run's base folder, above every pytest-xdist worker's own."""
    shared = tmp_path_factory.getbasetemp()
    return shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared


# name -> (what `dvc repro` is given, the build it starts from): the shared run is the prepared
# data's copy with every other stage run
BUILDS = {"prepared": (["split", "embed"], None), "built": ([], "prepared")}


def _build(tmp_path_factory, name: str) -> Path:
    """A scratch project (or a copy of the build it starts from) and one `dvc repro` in it,
    made once for the whole test run: the first worker to ask builds it, the others wait on a
    file lock. Its log (the first build's first) is repro.log beside it."""
    from filelock import FileLock

    repro, start_from = BUILDS[name]
    if shutil.which("dvc", path=str(BIN)) is None:
        pytest.skip("dvc is not installed beside this Python")
    shared = _shared_folder(tmp_path_factory)
    built = shared / name / "project"
    with FileLock(str(shared / f"{name}.lock")):
        if not (built.parent / "repro.log").exists():  # written last: the build finished
            if built.parent.exists():
                shutil.rmtree(built.parent)
            log = ""
            if start_from:
                base = _build(tmp_path_factory, start_from)
                shutil.copytree(base, built, symlinks=True)
                log = (base.parent / "repro.log").read_text()
            else:
                built.mkdir(parents=True)
                scratch_project(built)
            out = run(["dvc", "repro", *repro], built)
            run(["git", "add", "-A"], built)
            run(["git", "commit", "-qm", f"{name}: dvc repro {' '.join(repro)}".strip()], built)
            (built.parent / "repro.log").write_text(log + out.stdout + out.stderr)  # the logs' tests
    return built


def _copy_of(tmp_path_factory, built: Path) -> Path:
    """This worker's own copy of a build, to change."""
    root = tmp_path_factory.mktemp(built.parent.name) / "project"
    shutil.copytree(built, root, symlinks=True)
    shutil.copy(built.parent / "repro.log", root.parent / "repro.log")
    if (root / "mlflow.db").exists():
        _relocate(root, built)
    return root


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """A scratch project with its data stages run (posters through the split and the embed
    stage's features): for the tests that train a method themselves, which need not wait
    minutes for every method's stages."""
    return _copy_of(tmp_path_factory, _build(tmp_path_factory, "prepared"))


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """The whole pipeline run (the prepared data, then one `dvc repro` of every other stage),
    which many tests read (and commit on top of)."""
    return _copy_of(tmp_path_factory, _build(tmp_path_factory, "built"))


# The modules that take longest (`pytest --durations=0`, 2 cores), handed out first among their
# kind so that the last module a worker runs is a short one.
LONGEST = (
    "test_team.py",
    "test_training.py",
    "test_experiments.py",
    "test_dag.py",
    "test_pipeline.py",
    "test_features.py",
    "test_tracking.py",
)


def pytest_collection_modifyitems(config, items):
    """The order pytest-xdist hands modules out in (`--dist loadscope --no-loadscope-reorder`).

    The shared run (the `project` fixture) takes minutes to build, and every module that reads it
    waits for it. So one such module goes first (its worker builds the run and is handed no other
    module until its own tests are nearly done), then the modules that do not need the run (the
    other worker runs those meanwhile), then the rest of the modules that read it. The first of
    those, test_training.py, trains on the `prepared` data until its last test, so its worker
    is busy while the run is built."""
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)

    def reads_run(name):
        return any("project" in getattr(item, "fixturenames", ()) for item in modules[name])

    def longest_first(names):
        rank = {name: i for i, name in enumerate(LONGEST)}
        return sorted(names, key=lambda n: rank.get(Path(n).name, len(LONGEST)))

    shared = longest_first([n for n in modules if reads_run(n)])
    alone = longest_first([n for n in modules if not reads_run(n)])
    order = shared[:1] + alone + shared[1:]
    items[:] = [item for name in order for item in modules[name]]

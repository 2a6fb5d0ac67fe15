"""Shared fixtures: tiny posters and source folders made by the tests themselves."""

from __future__ import annotations

import copy
import io
import os
import shutil
import subprocess
import sys
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
        pytest.skip(f"real data not here: {path} is absent (set POSTERGENRE_SHARED_DATA to the "
                    "folder holding movielens-posters/ and tmdb-sample/)")
    return path


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
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "CI": "1",
           "MLFLOW_TRACKING_URI": tracking_uri(cwd), "PYTHONPATH": str(Path(cwd) / "src"),
           **(env or {})}
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{args} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


# dvc.yaml's stage that runs on every repro (always_changed), so `dvc status` always lists it
ALWAYS_RUN = {"tidy"}


def out_of_date(project: Path) -> set[str]:
    """The stages `dvc status` says are out of date, less the one that runs every time."""
    import json

    return set(json.loads(run(["dvc", "status", "--json"], project).stdout or "{}")) - ALWAYS_RUN


def stages_run(output: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran, less the every-time one."""
    return {line.split("'")[1] for line in output.splitlines()
            if line.startswith("Running stage")} - ALWAYS_RUN


def scratch_project(root: Path, edit_params=None) -> Path:
    """A git + DVC repository with this one's code, dvc.yaml and params (160 synthetic posters,
    one epoch for the custom CNN), not yet run."""
    for name in ("dvc.yaml", ".dvcignore", "pyproject.toml", ".gitignore"):
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
                    db.execute(f'update "{table}" set "{column[1]}" = replace("{column[1]}", ?, ?) '
                               f'where instr("{column[1]}", ?) > 0', (before, after, before))
    for mlmodel in (root / "mlartifacts").rglob("MLmodel"):
        mlmodel.write_text(mlmodel.read_text().replace(before, after))


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """One `dvc repro` of the whole pipeline that many tests read (and commit on top of).

    Built once for the whole run: under pytest-xdist the first worker to ask builds it (the
    others wait on a file lock), and each worker gets its own copy to change."""
    from filelock import FileLock

    if shutil.which("dvc", path=str(BIN)) is None:
        pytest.skip("dvc is not installed beside this Python")
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's base folder, above every worker's own
    built = shared / "built" / "project"
    with FileLock(str(shared / "project.lock")):
        if not (shared / "built" / "repro.log").exists():  # written last: the build finished
            if built.parent.exists():
                shutil.rmtree(built.parent)
            built.mkdir(parents=True)
            scratch_project(built)
            out = run(["dvc", "repro"], built)
            run(["git", "add", "-A"], built)
            run(["git", "commit", "-qm", "first run"], built)
            (built.parent / "repro.log").write_text(out.stdout + out.stderr)  # the logs' tests
    root = tmp_path_factory.mktemp("copy") / "project"
    shutil.copytree(built, root, symlinks=True)
    shutil.copy(built.parent / "repro.log", root.parent / "repro.log")
    _relocate(root, built)
    return root


# The modules that take longest (`pytest --durations=0`, 2 cores), handed out first among their
# kind so that the last module a worker runs is a short one.
LONGEST = ("test_team.py", "test_training.py", "test_experiments.py", "test_dag.py",
           "test_pipeline.py", "test_features.py", "test_tracking.py")


def pytest_collection_modifyitems(config, items):
    """The order pytest-xdist hands modules out in (`--dist loadscope --no-loadscope-reorder`).

    The shared run (the `project` fixture) takes minutes to build, and every module that reads it
    waits for it. So one such module goes first (its worker builds the run and is handed no other
    module until its own tests are nearly done), then the modules that do not need the run (the
    other worker runs those meanwhile), then the rest of the modules that read it."""
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

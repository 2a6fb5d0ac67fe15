"""dvc.yaml is exact: no stage runs code it does not list, an edit puts out of date exactly the
stages that run the edited code, and apps and run-only plumbing put nothing out of date."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import networkx
import pytest
import yaml

from tests.conftest import ALWAYS_RUN, REPO, out_of_date, run, stages_run

SRC = "src/postergenre/"
M = SRC + "methods/"
PACKAGE = REPO / "src" / "postergenre"
# Run-only plumbing: code a stage runs that cannot change what it writes (progress lines, how a
# command starts and logs, MLflow runs and tags, logging the pyfunc model). No stage lists it,
# so editing it re-runs nothing; the import tracer below does not follow it.
RUN_ONLY = (SRC + "progress.py", SRC + "runtime/")
PIXEL = ("baseline", "mlknn", "ovr", "custom", "resnet34")
FEATURE = ("head", "mlknn_features")
METHODS = (*PIXEL, *FEATURE, "ensemble")


def _resolved_stages(root: Path = REPO) -> dict[str, dict]:
    """Every stage as DVC resolves dvc.yaml (foreach and matrix expanded): its command and deps."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {
            stage.name: {"cmd": stage.cmd, "deps": [d.def_path for d in stage.deps]}
            for stage in repo.index.stages
        }


def _module_file(dotted: str) -> Path | None:
    parts = dotted.split(".")
    if parts[0] != "postergenre":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """Package modules `path` imports, at top level, inside functions or on first use."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", "") == "lazy_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            out.add(node.args[0].value)  # imported on first use (core/lazy.py): still run
    return {name for name in out if _module_file(name) is not None}


def _trivial(path: Path) -> bool:
    """A package's face that runs nothing: a docstring and constants (the version) alone."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return path.name == "__init__.py" and all(
        isinstance(node, ast.Expr | ast.Assign) and isinstance(node.value, ast.Constant) for node in body
    )


def code_run_by(*modules: str) -> set[str]:
    """Every package file that running `modules` executes (each module, its parent packages and
    what they import, and so on), as repository paths, run-only plumbing left out."""
    seen: set[str] = set()
    todo = [".".join(m.split(".")[:i]) for m in modules for i in range(1, len(m.split(".")) + 1)]
    while todo:
        path = _module_file(todo.pop())
        if path is None:
            continue
        rel = str(path.relative_to(REPO))
        if rel in seen or rel.startswith(RUN_ONLY) or _trivial(path):
            continue
        seen.add(rel)
        for name in _imports(path):
            parts = name.split(".")
            todo.extend(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return seen


def _loaded_by_name(cmd: str, params: dict) -> list[str]:
    """The method modules a stage loads by name (importlib): its method, an ensemble's members,
    every method with heat maps for genre-maps."""
    words = cmd.split()
    module = words[2]
    if module.endswith((".train", ".evaluate")):
        method = words[3]
        members = params["ensemble"]["members"] if method == "ensemble" else []
        return [f"postergenre.methods.{m}" for m in (method, *members)]
    if module.endswith(".genre_maps"):
        from postergenre.methods import estimator_class
        from postergenre.methods.params import all_methods

        return [f"postergenre.methods.{m}" for m in all_methods(params) if estimator_class(m).has_heatmaps]
    return []


def _listed(deps: list[str], path: str) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def test_no_stage_runs_code_it_does_not_list():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stages = _resolved_stages()
    assert {
        "train@custom",
        "train-features@head",
        "train-ensemble",
        "embed@efficientnet_lite0-squash",
        "genre-maps",
        "report",
    } <= set(stages)
    for name, stage in stages.items():
        module = stage["cmd"].split()[2]
        runs = code_run_by(module, *_loaded_by_name(stage["cmd"], params))
        unlisted = sorted(f for f in runs if not _listed(stage["deps"], f))
        assert not unlisted, f"{name} runs {unlisted} but dvc.yaml does not list them"
        assert not any(d.startswith(RUN_ONLY) or d.startswith(SRC + "apps") for d in stage["deps"])


def test_genre_maps_lists_exactly_the_methods_with_heat_maps(default_params):
    from postergenre.methods import estimator_class
    from postergenre.methods.params import all_methods
    from postergenre.pipeline.check import check_listed_stages

    mapped = {m for m in all_methods(default_params) if estimator_class(m).has_heatmaps}
    deps = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["genre-maps"]["deps"]
    assert mapped == {"custom", "resnet34", "head"}
    assert {d.split("/")[1] for d in deps if d.startswith("models/")} == mapped
    check_listed_stages(yaml.safe_load((REPO / "dvc.yaml").read_text()), default_params)
    del default_params["methods"]["custom"]
    with pytest.raises(ValueError, match="genre-maps reads the models of custom, resnet34, head"):
        check_listed_stages(yaml.safe_load((REPO / "dvc.yaml").read_text()), default_params)


def test_dvc_yaml_is_short_and_written_by_hand():
    text = (REPO / "dvc.yaml").read_text()
    assert len(text.splitlines()) <= 155
    assert "foreach: ${methods}" in text and "foreach: ${feature_methods}" in text
    assert "matrix:" in text


def _out_of_date(project) -> set[str]:
    return out_of_date(project)


def _touched(project, rel, check):
    path = project / rel
    saved = path.read_bytes()
    try:
        path.write_bytes(saved + b"\n# touched\n")
        return check()
    finally:
        path.write_bytes(saved)


def _stages_of(*methods):
    """A method's train and evaluate stages, named as dvc.yaml's groups name them."""

    def pair(m):
        if m == "ensemble":
            return {"train-ensemble", "evaluate-ensemble"}
        group = "" if m in PIXEL else "-features"
        return {f"train{group}@{m}", f"evaluate{group}@{m}"}

    return set().union(*map(pair, methods))


# The methods with heat maps in the default params: genre-maps may load each of them.
MAPPED = {"custom", "resnet34", "head"}
ENSEMBLE = ("head", "custom", "mlknn_features")


# check-params reads every method's settings, so any method module is its dep too (its marker
# does not change when the check passes: nothing downstream re-runs).
@pytest.mark.parametrize("method", METHODS)
def test_touching_a_method_module_puts_exactly_its_stages_out_of_date(project, method):
    assert _out_of_date(project) == set()
    changed = _touched(project, f"{M}{method}.py", lambda: _out_of_date(project))
    also = ("ensemble",) if method in ENSEMBLE else ()
    maps = {"genre-maps"} if method in MAPPED else set()
    assert changed == _stages_of(method, *also) | {"check-params"} | maps


@pytest.mark.parametrize(
    "module, methods, others",
    [
        ("knn/neighbours.py", ("mlknn", "ovr", "mlknn_features", "ensemble"), ()),
        # a family is a folder: ovr runs neighbours.py, not posterior.py, but both are knn's
        ("knn/posterior.py", ("mlknn", "ovr", "mlknn_features", "ensemble"), ()),
        ("nets/training.py", ("custom", "resnet34", "head", "ensemble"), ("genre-maps",)),
        ("nets/pixel_network.py", ("custom", "resnet34", "head", "ensemble"), ("genre-maps",)),
        ("features/feature_input.py", ("head", "mlknn_features", "ensemble"), ("genre-maps",)),
        ("base/__init__.py", METHODS, ("genre-maps", "report")),  # the report runs the registry
        ("heatmaps.py", (), ("genre-maps",)),
    ],
)
def test_touching_a_family_puts_exactly_the_methods_that_run_it_out_of_date(project, module, methods, others):
    changed = _touched(project, f"{M}{module}", lambda: _out_of_date(project))
    assert changed == _stages_of(*methods) | set(others) | {"check-params"}


@pytest.mark.parametrize(
    "module, stages",
    [
        (
            "pipeline/train.py",
            {"train@" + m for m in PIXEL} | {"train-features@" + m for m in FEATURE} | {"train-ensemble"},
        ),
        ("pipeline/report.py", {"report"}),
        ("pipeline/split.py", {"split"}),
        ("data/vocab.py", {"synthesize", "ingest", "resize", "split"}),
        ("core/metrics.py", None),  # the ground floor is every stage's
    ],
)
def test_touching_a_stage_or_a_layer_puts_exactly_the_stages_that_run_it_out_of_date(project, module, stages):
    changed = _touched(project, f"{SRC}{module}", lambda: _out_of_date(project))
    everything = set(_resolved_stages(project)) - ALWAYS_RUN
    assert changed == (everything if stages is None else stages)


APPS_AND_PLUMBING = [
    "apps/cli.py",
    "apps/predict.py",
    "apps/explain.py",
    "apps/web.py",
    "apps/compare.py",
    "apps/remote.py",
    "apps/mlflow_ui.py",
    "apps/plots.py",
    "apps/pyfunc_model.py",
    "apps/download_posters.py",
    "progress.py",
    "runtime/entry.py",
    "runtime/tracking.py",
    "runtime/serving.py",
    "runtime/registry.py",
]


def test_touching_the_apps_and_run_only_plumbing_puts_nothing_out_of_date(project):
    # all of them at once (one `dvc status`): had any one been a dep, its stage would show
    paths = [project / SRC / module for module in APPS_AND_PLUMBING]
    saved = [path.read_bytes() for path in paths]
    try:
        for path, content in zip(paths, saved, strict=True):
            path.write_bytes(content + b"\n# touched\n")
        assert _out_of_date(project) == set()
    finally:
        for path, content in zip(paths, saved, strict=True):
            path.write_bytes(content)


def test_every_method_evaluation_feeds_the_report(project):
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        graph = repo.index.graph
        report = next(s for s in graph if s.name == "report")
        upstream = {s.name for s in networkx.descendants(graph, report)}
    assert _stages_of(*METHODS) <= upstream


def test_a_forced_embed_rerun_reruns_nothing_downstream(project):
    folder = project / "data" / "features" / "efficientnet_lite0" / "squash"
    before = [(folder / name).read_bytes() for name in ("embed.json", "features.npy")]
    run(["dvc", "repro", "-f", "-s", "embed"], project)  # the matrix's name: all its stages
    try:
        assert [(folder / name).read_bytes() for name in ("embed.json", "features.npy")] == before
        # no timing or other run-to-run value in a tracked file: git sees nothing changed
        assert run(["git", "status", "--porcelain"], project).stdout == ""
        out = run(["dvc", "repro"], project)
        assert stages_run(out.stdout) == set(), out.stdout
    finally:
        run(["git", "checkout", "--", "dvc.lock"], project)


TOY = '''"""A toy method: each genre's training frequency, scaled by the poster's brightness."""

import numpy as np

from postergenre.core.settings import PositiveFloat
from postergenre.methods.base import BaseSettings, Estimator


class Settings(BaseSettings):
    gain: PositiveFloat = 1.5


class Toy(Estimator):
    method = "toy"
    Settings = Settings

    def _fit(self, X, Y, dev=None, on_epoch=None, checkpoints=None):
        self.frequency = Y.mean(axis=0)

    def predict_proba(self, X):
        brightness = X.reshape(len(X), -1).mean(axis=1, keepdims=True) / 255
        return np.clip(self.frequency[None, :] * (0.5 + brightness) * self.params["gain"], 0, 1)

    def _state(self):
        return {"frequency": self.frequency.tolist()}

    def _set_state(self, state):
        self.frequency = np.asarray(state["frequency"])
'''


def test_a_new_method_is_one_module_and_one_params_entry(project, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True, ignore=shutil.ignore_patterns("mlflow.db"))
    (copy / M / "toy.py").write_text(TOY)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["methods"]["toy"] = {"family": "base", "reads": "seed", "size": "64x64", "gain": 1.5}
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    # the foreach sees it: two new stages; check-params and the report read the params it changed
    assert _out_of_date(copy) == {"check-params", "train@toy", "evaluate@toy", "report"}
    out = run(["dvc", "repro"], copy)
    ran = stages_run(out.stdout)
    assert ran == {"check-params", "train@toy", "evaluate@toy", "report"}
    metrics = json.loads((copy / "metrics" / "details" / "toy.json").read_text())
    assert 0 < metrics["test"]["scores"]["mAP"] <= 1 and "tuned" in metrics["test"]
    assert "| toy |" in (copy / "reports" / "results.md").read_text()

    # a wrong family is refused with its key path, before anything runs
    params["methods"]["toy"]["family"] = "knn"
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bad = run(["dvc", "repro"], copy, check=False)
    assert bad.returncode != 0 and "'methods.toy.family' must be 'base'" in bad.stdout + bad.stderr


def test_validating_params_imports_no_torch():
    code = (
        "import sys\n"
        "from postergenre.methods import params\n"
        "params.load('params.yaml')\n"
        # every method's settings were read (their modules imported), yet no torch
        "assert 'torch' not in sys.modules and 'postergenre.methods.head' in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_dvc_lock_holds_exactly_the_stages_of_dvc_yaml():
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(_resolved_stages())


def test_the_ensemble_stages_must_read_its_members(default_params):
    from postergenre.pipeline.check import check_listed_stages

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())
    check_listed_stages(stages, default_params)  # as checked in: consistent
    default_params["ensemble"]["members"] = ["head", "ovr"]
    with pytest.raises(
        ValueError, match="reads the models of head, custom, mlknn_features but ensemble.members is head, ovr"
    ):
        check_listed_stages(stages, default_params)
    del default_params["ensemble"]
    with pytest.raises(ValueError, match="delete the stage to skip the ensemble"):
        check_listed_stages(stages, default_params)

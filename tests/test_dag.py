"""The DAG is exact: each stage lists the code, data and params it reads, no more, no less."""

import json
import shutil

import pytest
import yaml

from postergenre import dag
from postergenre.params import load
from tests.conftest import REPO, run

METHODS = ("baseline", "mlknn", "ovr", "custom", "resnet34", "head", "mlknn_features", "ensemble")
M = "src/postergenre/methods/"


def test_dvc_yaml_is_what_postergenre_dag_writes():
    assert not dag.stale(REPO / "dvc.yaml", load(REPO / "params.yaml")), \
        "dvc.yaml is stale: run `postergenre dag`"


def _stages():
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("method, has, lacks", [
    ("baseline", ["baseline.py"], ["neighbours.py", "training.py", "feature_input.py", "mlknn.py"]),
    ("mlknn", ["mlknn.py", "neighbours.py"], ["ovr.py", "training.py", "feature_input.py"]),
    ("ovr", ["ovr.py", "neighbours.py"], ["mlknn.py", "training.py"]),
    ("custom", ["custom.py", "pixel_network.py", "training.py"], ["resnet34.py", "head.py", "neighbours.py"]),
    ("resnet34", ["resnet34.py", "pixel_network.py", "training.py"], ["custom.py", "feature_input.py"]),
    ("head", ["head.py", "training.py", "feature_input.py"], ["pixel_network.py", "neighbours.py"]),
    ("mlknn_features", ["mlknn_features.py", "mlknn.py", "neighbours.py", "feature_input.py"],
     ["training.py", "head.py", "ovr.py"]),
    # its members' modules (loaded by name) and their model folders
    ("ensemble", ["ensemble.py", "head.py", "custom.py", "mlknn_features.py", "pixel_network.py"],
     ["ovr.py", "resnet34.py", "baseline.py"]),
])
def test_each_method_stage_lists_its_module_and_the_shared_ones_it_imports(method, has, lacks):
    stages = _stages()
    for stage in (f"train-{method}", f"evaluate-{method}"):
        deps = stages[stage]["deps"]
        assert all(M + f in deps for f in has), (stage, has)
        assert not any(M + f in deps for f in lacks), (stage, lacks)
        assert len(deps) == len(set(deps))
    backbone = "src/postergenre/backbone.py"
    assert (backbone in stages[f"train-{method}"]["deps"]) == (
        method in ("head", "mlknn_features", "ensemble"))
    members = {"models/head", "models/custom", "models/mlknn_features"}
    assert (members <= set(stages[f"train-{method}"]["deps"])) == (method == "ensemble")
    assert "src/postergenre/train.py" in stages[f"train-{method}"]["deps"]
    assert "src/postergenre/evaluate.py" not in stages[f"train-{method}"]["deps"]
    assert "src/postergenre/train.py" not in stages[f"evaluate-{method}"]["deps"]
    assert "src/postergenre/cli.py" not in stages[f"train-{method}"]["deps"]


def test_stages_read_two_files_of_data_interim_and_the_params_they_use():
    stages = _stages()
    for name, stage in stages.items():
        if name.startswith(("train-", "evaluate-")):
            assert "data/interim" not in stage["deps"] and "data/split" not in stage["deps"]
            assert {"data/interim/genres.json", "data/interim/movies.csv"} <= set(stage["deps"])
    # data.source and data.path: recorded in the model card (what the model was trained on)
    assert stages["train-ovr"]["params"] == ["seed", "k", "methods.ovr", "resize.sizes",
                                             "resize.max_pixels", "data.source", "data.path"]
    assert stages["train-custom"]["params"] == ["seed", "training", "methods.custom", "resize.sizes",
                                                "resize.max_pixels", "data.source", "data.path"]
    assert "embed" in stages["train-head"]["params"]
    assert "params" not in stages["evaluate-head"]  # evaluate computes from the model alone
    assert stages["report"]["deps"][:len(METHODS)] == [f"metrics/details/{m}.json" for m in METHODS]


def _out_of_date(project) -> set[str]:
    out = run(["dvc", "status", "--json"], project)
    return set(json.loads(out.stdout or "{}"))


def _touched(project, rel, check):
    path = project / rel
    saved = path.read_bytes()
    try:
        path.write_bytes(saved + b"\n# touched\n")
        return check()
    finally:
        path.write_bytes(saved)


def _method_stages(*methods):
    return {f"{kind}-{m}" for m in methods for kind in ("train", "evaluate")}


# the methods with heat maps in the default params: the genre-maps stage loads them
MAPPED = {"custom", "resnet34", "head"}


# check-params reads the whole package (it checks that dvc.yaml is current) and has no outputs.
# The ensemble loads its members (head, custom, mlknn_features): their code is its code too.
@pytest.mark.parametrize("method, also", [
    ("baseline", ()), ("ovr", ()), ("custom", ("ensemble",)), ("resnet34", ()),
    ("head", ("ensemble",)), ("mlknn_features", ("ensemble",)), ("ensemble", ()),
    ("mlknn", ("mlknn_features", "ensemble")),  # ML-kNN on features runs the ML-kNN module itself
])
def test_touching_a_method_module_puts_exactly_its_stages_out_of_date(project, method, also):
    assert _out_of_date(project) == set()
    changed = _touched(project, f"{M}{method}.py", lambda: _out_of_date(project))
    maps = {"genre-maps"} if method in MAPPED else set()
    assert changed == _method_stages(method, *also) | {"check-params"} | maps


@pytest.mark.parametrize("module, methods, others", [
    ("neighbours.py", ("mlknn", "ovr", "mlknn_features", "ensemble"), ()),
    ("training.py", ("custom", "resnet34", "head", "ensemble"), ("genre-maps",)),
    ("pixel_network.py", ("custom", "resnet34", "ensemble"), ("genre-maps",)),
    ("feature_input.py", ("head", "mlknn_features", "ensemble"), ("genre-maps",)),
    ("base.py", METHODS, ("genre-maps",)),
    ("../metrics.py", METHODS, ("genre-maps",)),
    ("../backbone.py", ("head", "mlknn_features", "ensemble"),
     ("embed@efficientnet_lite0-squash", "genre-maps")),
    ("../heatmaps.py", (), ("genre-maps",)),
    ("../train.py", (), tuple(f"train-{m}" for m in METHODS)),
    ("../report.py", (), ("report",)),
])
def test_touching_a_shared_module_puts_every_stage_that_runs_it_out_of_date(project, module,
                                                                              methods, others):
    changed = _touched(project, f"{M}{module}", lambda: _out_of_date(project))
    assert changed == _method_stages(*methods) | set(others) | {"check-params"}


def test_a_forced_embed_rerun_reruns_nothing_downstream(project):
    folder = project / "data" / "features" / "efficientnet_lite0" / "squash"
    before = [(folder / name).read_bytes() for name in ("embed.json", "features.npy")]
    run(["dvc", "repro", "-f", "-s", "embed"], project)  # the matrix's name: all its stages
    try:
        assert [(folder / name).read_bytes() for name in ("embed.json", "features.npy")] == before
        out = run(["dvc", "repro"], project)
        assert "Running stage" not in out.stdout, out.stdout
    finally:
        run(["git", "checkout", "--", "dvc.lock", "metrics/embed"], project)


TOY = '''"""A toy method: each genre's training frequency, scaled by the poster's brightness."""

import numpy as np

from postergenre.methods.base import Estimator

SPEC = {"estimator": "Toy", "input": "pixels", "reads": [],
        "params": {"size": "size", "gain": "pos_number"}}


class Toy(Estimator):
    method = "toy"

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
    params["methods"]["toy"] = {"size": "64x64", "gain": 1.5}
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    stale = run(["postergenre", "check-params"], copy, check=False)
    assert stale.returncode == 2 and "run `postergenre dag`" in stale.stderr
    run(["postergenre", "dag"], copy)
    out = run(["dvc", "repro"], copy)
    ran = {line.split("'")[1] for line in out.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"check-params", "train-toy", "evaluate-toy", "report"}
    metrics = json.loads((copy / "metrics" / "details" / "toy.json").read_text())
    assert 0 < metrics["test"]["scores"]["mAP"] <= 1 and "tuned" in metrics["test"]
    assert "| toy |" in (copy / "reports" / "results.md").read_text()
    deps = yaml.safe_load((copy / "dvc.yaml").read_text())["stages"]["train-toy"]["deps"]
    assert M + "toy.py" in deps and M + "neighbours.py" not in deps

    # ...and leaving it out again is the params entry gone and `postergenre dag`
    del params["methods"]["toy"]
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["postergenre", "dag"], copy)
    assert "train-toy" not in yaml.safe_load((copy / "dvc.lock").read_text())["stages"]
    assert "train-toy" not in (copy / "dvc.yaml").read_text()


def test_validating_params_and_writing_the_dag_import_no_torch():
    import subprocess
    import sys

    code = ("import sys\n"
            "from postergenre import dag, params\n"
            "p = params.load('params.yaml')\n"
            "dag.generated(p)\n"
            "assert 'torch' not in sys.modules and 'postergenre.methods.head' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_dvc_lock_holds_no_stage_that_dvc_yaml_no_longer_has():
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    # the embed matrix is locked as one entry per backbone and view
    embed = {f"embed@{b}-{v}" for b in params["embed"]["backbones"] for v in params["embed"]["views"]}
    assert set(lock) == (set(_stages()) - {"embed"}) | embed


def test_pruning_the_lock_keeps_a_matrix_stages_entries(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "embed@efficientnet_lite0-squash": {"cmd": "a"}, "gone": {"cmd": "b"}, "report": {"cmd": "c"},
        "embed": {"cmd": "from before embed was a matrix"}}}))
    dag.prune_lock(lock, {"embed": {"matrix": {}}, "report": {}})
    assert set(yaml.safe_load(lock.read_text())["stages"]) == {"embed@efficientnet_lite0-squash",
                                                               "report"}


def test_no_stage_lists_a_source_folder_only_the_files_it_runs():
    for name, stage in _stages().items():
        code = [d for d in stage.get("deps", []) if d.startswith("src/")]
        assert all(d.endswith(".py") for d in code), (name, code)
    assert "src/postergenre/data/sources.py" not in _stages()["check-params"]["deps"]


@pytest.mark.parametrize("module, stages", [
    ("data/vocab.py", {"synthesize", "ingest", "resize"}),  # resize finds posters via sources
    ("data/sources.py", {"ingest", "resize"}),
    ("stages/split.py", {"split"}),
    ("cli.py", set()),  # the front end runs in no stage
    ("predict.py", set()),  # nor does predict: the pyfunc the train stages log imports it by name
    ("remote.py", set()),
    ("explain.py", set()),  # explain and serve run in no stage (genre-maps shares heatmaps.py)
    ("web.py", set()),
])
def test_touching_a_data_module_puts_exactly_the_data_stages_that_run_it_out_of_date(project, module,
                                                                                     stages):
    changed = _touched(project, f"src/postergenre/{module}", lambda: _out_of_date(project))
    assert changed == stages

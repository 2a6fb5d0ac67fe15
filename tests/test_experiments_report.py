"""tools/experiments_report.py: the seed, split, learning-curve and lever sections, from
experiments as `dvc exp show` gives them and their details files as git holds them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from postergenre.apps.compare import Experiment

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location(
        "experiments_report", ROOT / "tools" / "experiments_report.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def headline(value: float, n_train: int = 800) -> dict:
    return {
        "mAP": value,
        "macro_roc_auc": value + 0.4,
        "micro_f1": 0.5,
        "macro_f1": value - 0.05,
        "n_train": n_train,
        "ci95": {"mAP": {"low": value - 0.02, "high": value + 0.02}},
    }


BASE = {
    "seed": 1,
    "split.seed": 7,
    "split.max_train": 0,
    "feature_methods.head.noise": 0.0,
    "ensemble.calibrate": False,
}


def exp(name, rev=None, value=0.25, n_train=800, **changed):
    params = {**BASE, **{k.replace("__", "."): v for k, v in changed.items()}}
    methods = ("head", "custom", "resnet34", "ensemble")
    return Experiment(
        name,
        params,
        {m: headline(value + i / 100, n_train) for i, m in enumerate(methods)},
        rev,
    )


def test_seeds_bold_a_spread_wider_than_the_bootstrap_and_the_split_gives_differences(tool):
    runs = [exp("base", "workspace")] + [exp(f"s{s}", f"r{s}", 0.25 + 0.03 * s, seed=s) for s in (2, 3)]
    lines = tool.seeds_section(runs)
    assert lines[0] == "## Seeds" and "3 training seeds (1, 2, 3)" in lines[2]
    (head,) = [line for line in lines if line.startswith("| head |")]
    # mAP 0.25, 0.31, 0.34: sd 0.0458 against an interval 0.04 wide (sd 0.04 / 3.92 = 0.0102)
    assert "**0.3000 ± 0.0458 (0.0102)**" in head
    assert "| 0.5000 ± 0.0000 |" in head  # no interval given: no comparison made
    other = exp("split", "r9", 0.20, split__seed=9)
    split = tool.split_section([runs[0], other], runs[0])
    (row,) = [line for line in split if line.startswith("| custom | mAP")]
    assert row.endswith("| -0.0500 |") and "0.2600 [0.240, 0.280]" in row


def test_the_curve_is_drawn_in_order_with_shares_of_the_training_posters(tool, tmp_path):
    runs = [exp("all", "workspace", 0.3)] + [
        exp(f"n{n}", f"r{n}", 0.2 + n / 8000, split__max_train=n, n_train=n) for n in (400, 200)
    ]
    for e in runs[1:]:  # a method the capped experiments did not re-run keeps the full split's file
        e.metrics["resnet34"]["n_train"] = 800
    lines = tool.curve_section(runs, "movielens", tmp_path)
    assert (tmp_path / "learning-curve.png").stat().st_size > 10_000
    rows = [line for line in lines if line.startswith("| head |")]
    assert [r.split("|")[2:4] for r in rows] == [[" 200 ", " 25% "], [" 400 ", " 50% "], [" 800 ", " 100% "]]


def test_levers_are_judged_on_dev_from_each_experiments_own_details(tool, tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    def write(head_dev_map, ensemble_dev_macro_f1):
        folder = tmp_path / "metrics" / "details"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "head.json").write_text(json.dumps({"dev": {"scores": {"mAP": head_dev_map}}}))
        (folder / "ensemble.json").write_text(
            json.dumps({"dev": {"decided": {"macro_f1": ensemble_dev_macro_f1}}})
        )

    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "0")
    revs = {}
    for name, head_map, ens_f1 in (("noisy", 0.31, 0.2), ("calibrated", 0.30, 0.18)):
        write(head_map, ens_f1)
        git("add", "-A")
        git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", name)
        revs[name] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True
        ).stdout.strip()
    write(0.30, 0.2)  # the baseline: the workspace
    base = exp("base", "workspace")
    runs = [
        base,
        exp("noisy", revs["noisy"], feature_methods__head__noise=0.5),
        exp("calibrated", revs["calibrated"], ensemble__calibrate=True),
        exp("two-at-once", revs["noisy"], feature_methods__head__noise=0.5, seed=5),  # not a lever alone
    ]
    dev = {e.name: tool.dev_numbers(tmp_path, e) for e in runs}
    assert dev["noisy"] == {"head": {"scores": {"mAP": 0.31}}, "ensemble": {"decided": {"macro_f1": 0.2}}}
    lines = tool.levers_section(runs, base, dev)
    # the run without a lever, once for each method a lever changed, before its levers
    assert [line.split(" | ")[1] for line in lines if line.startswith("| (none)")] == ["head", "ensemble"]
    rows = [line for line in lines if line.startswith("| `")]
    assert len(rows) == 2
    assert rows[0].startswith("| `head.noise=0.5` | head | 0.3100 (scores mAP)") and rows[0].endswith(
        "| yes |"
    )
    assert rows[1].startswith("| `ensemble.calibrate=True` | ensemble | 0.1800 (decided macro_f1)")
    assert rows[1].endswith("| no |")


def test_the_record_adds_later_experiments_on_the_same_run_and_keeps_another_run_apart(tool, tmp_path):
    folder = tmp_path / "metrics" / "details"
    folder.mkdir(parents=True)
    (folder / "head.json").write_text(json.dumps({"dev": {"scores": {"mAP": 0.30}}}))
    # experiments given no commit read the workspace's details files
    first = tool.record(tmp_path, [exp("base", "workspace"), exp("s2", None, 0.3, seed=2)], None)
    (run,) = first["runs"]
    assert [e["name"] for e in run["experiments"]] == ["s2"]
    assert run["baseline"]["dev"] == {"head": {"scores": {"mAP": 0.30}}}
    kept = json.loads(json.dumps(first))  # as read back from the file
    # the baseline commit itself (the workspace's params) is not an experiment
    later = [
        exp("base", "workspace"),
        exp("HEAD", "abc"),
        exp("s3", None, 0.2, seed=3),
        exp("s2", None, 0.4, seed=2),
    ]
    both = tool.record(tmp_path, later, kept)
    (run,) = both["runs"]
    assert [e["name"] for e in run["experiments"]] == ["s2", "s3"]
    assert run["experiments"][0]["metrics"]["head"]["mAP"] == 0.4  # the later s2 replaced the kept one
    exps, dev = tool.from_record(run)
    assert [e.rev for e in exps] == ["workspace", "s2", "s3"] and set(dev) == {"base", "s2", "s3"}
    assert "3 training seeds (1, 2, 3)" in tool.seeds_section(exps)[2]
    # the same settings with other numbers (another machine): a run of its own, its own headings
    other = tool.record(
        tmp_path,
        [exp("base", "workspace", 0.26), exp("noisy", None, 0.27, **{"feature_methods.head.noise": 0.5})],
        both,
    )
    assert [len(r["experiments"]) for r in other["runs"]] == [2, 1]
    lines = tool.report_lines(other, "movielens", tmp_path)
    assert [line for line in lines if line.startswith("## ")] == [
        "## Around run 1 of 2",
        "## Around run 2 of 2",
    ]
    assert "### Seeds" in lines and "### Levers" in lines
    assert "Its baseline's test mAP: head 0.2600, custom 0.2700, resnet34 0.2800, ensemble 0.2900." in lines
    # each lever against its own run's baseline
    (none_row,) = [line for line in lines if line.startswith("| (none) | head")]
    assert "0.2600" in none_row

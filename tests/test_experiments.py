"""Experiments and branches as a DVC user makes them, in the shared scratch run: `dvc exp run -S`,
`postergenre compare`, `dvc metrics diff`, and what a bad setting does to the workspace."""

import json
import re

import pytest
import yaml

from tests.conftest import out_of_date, run, stages_run, tracking_uri


def test_a_run_from_a_changed_workspace_is_marked_dirty(project):
    from mlflow.tracking import MlflowClient

    from postergenre.runtime import tracking

    params = project / "params.yaml"
    original = params.read_text()
    uri = tracking_uri(project)
    code = (
        "from postergenre.runtime.tracking import stage_run\n"
        "with stage_run('train-probe', {'seed': 1}):\n    pass\n"
    )
    try:
        run(["python", "-c", code], project)
        params.write_text(original + "# an edit\n")
        run(["python", "-c", code], project)
    finally:
        params.write_text(original)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    clean, dirty = sorted(
        client.search_runs([experiment.experiment_id], filter_string="tags.stage = 'train-probe'"),
        key=lambda r: r.info.start_time,
    )
    assert clean.data.tags["git_dirty"] == "false" and clean.data.tags["git_dirty_files"] == ""
    assert dirty.data.tags["git_dirty"] == "true"
    assert dirty.data.tags["git_dirty_files"] == "params.yaml"


def test_misspelt_key_from_exp_run_fails_with_its_name(project):
    # DVC refuses `-S data.sorce=...` itself; `+data.sorce=...` adds the key, which we refuse.
    out = run(["dvc", "exp", "run", "-S", "+data.sorce=tmdb"], project, check=False)
    run(["git", "checkout", "--", "params.yaml"], project)
    assert out.returncode != 0
    assert "unknown key 'data.sorce'" in out.stdout + out.stderr


def _stale_with(project, edit) -> set[str]:
    """What `dvc exp run -S ...` would run, asked of DVC without running it."""
    path = project / "params.yaml"
    saved = path.read_bytes()
    params = yaml.safe_load(saved)
    edit(params)
    try:
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        return out_of_date(project)
    finally:
        path.write_bytes(saved)


def test_a_new_k_puts_only_the_knn_stages_and_what_reads_them_out_of_date(project):
    # the README's `dvc exp run -S k=40`; the evaluate stages and the report follow once the
    # models change
    assert _stale_with(project, lambda p: p.update(k=5)) == {
        "check-params",
        "train@mlknn",
        "train@ovr",
        "train-features@mlknn_features",
        "report",
    }
    assert out_of_date(project) == set()


def test_a_new_training_seed_leaves_the_data_stages_and_the_split_alone(project):
    # docs/experiments.md's seed study (`dvc exp run --queue -S seed=1,2,3`): every train stage,
    # and nothing before them; the split and the synthetic posters have seeds of their own
    stale = _stale_with(project, lambda p: p.update(seed=7))
    assert {"check-params", "train@custom", "train-features@head", "train-ensemble", "report"} <= stale
    assert not stale & {"synthesize", "ingest", "resize", "split"}
    assert not any(s.startswith("embed") for s in stale)
    assert {"synthesize", "split"} <= _stale_with(
        project, lambda p: (p["split"].update(seed=7), p["data"]["synthetic"].update(seed=7))
    )
    assert out_of_date(project) == set()


def test_exp_run_reruns_only_what_its_params_change_and_its_branch_diffs(project):
    out = run(["dvc", "exp", "run", "-S", "methods.mlknn.s=0.5"], project)
    assert stages_run(out.stdout) == {"check-params", "train@mlknn", "evaluate@mlknn", "report"}
    # the README's comparison: the experiment beside the workspace and its commit, in 100 columns
    shown = run(["postergenre", "compare"], project).stdout
    lines = shown.splitlines()
    assert max(map(len, lines)) <= 100
    assert lines[0] == "params that differ: methods.mlknn.s"
    header = next(line for line in lines if line.startswith("mAP"))
    methods = {line.split()[0] for line in lines[lines.index(header) + 1 :] if line.strip()}
    assert {"mlknn", "head"} <= methods and "embed" not in methods
    mlknn = next(line for line in lines[lines.index(header) :] if line.startswith("mlknn "))
    assert re.fullmatch(r"mlknn( +\d\.\d{4} \[\d\.\d{3}, \d\.\d{3}\]){3}", mlknn.strip()), mlknn
    # workspace and the experiment
    assert sum(line.split()[1:] == ["methods.mlknn.s=0.5"] for line in lines) == 2
    # the experiment as a branch, against the commit it started from: what `dvc metrics diff
    # main <branch>` shows a reviewer
    base = run(["git", "rev-parse", "--abbrev-ref", "HEAD"], project).stdout.strip()
    name = run(["dvc", "exp", "list", "--name-only"], project).stdout.split()[0]
    run(["dvc", "exp", "branch", name, "smoother"], project)
    run(["git", "checkout", "--", "."], project)
    run(["dvc", "checkout", "-q"], project)
    diff = json.loads(run(["dvc", "metrics", "diff", base, "smoother", "--json"], project).stdout)
    changed = {path for path, rows in diff.items() if any(r.get("diff") for r in rows.values())}
    assert changed == {"metrics/mlknn.json"}


def test_a_new_view_puts_only_its_embed_stage_and_the_feature_methods_out_of_date(project):
    # what `dvc exp run -S embed.views=[squash,flip]` would run (a full run costs a minute)
    stale = _stale_with(project, lambda p: p["embed"].update(views=["squash", "flip"]))
    # the evaluate stages follow once their models change; embed@...-squash stays as it is
    assert stale == {
        "check-params",
        "embed@efficientnet_lite0-flip",
        "train-features@head",
        "train-features@mlknn_features",
        "train-ensemble",
        "report",
    }
    assert out_of_date(project) == set()


def test_exp_run_with_a_missing_data_path_changes_nothing(project):
    interim = (project / "data" / "interim" / "movies.csv").read_bytes()
    lock = (project / "dvc.lock").read_bytes()
    out = run(
        ["dvc", "exp", "run", "-S", "data.source=movielens", "-S", "data.path=/nowhere/posters"],
        project,
        check=False,
    )
    run(["git", "checkout", "--", "params.yaml"], project)
    assert out.returncode != 0
    assert "data.path '/nowhere/posters' does not exist" in out.stdout + out.stderr
    assert (project / "data" / "interim" / "movies.csv").read_bytes() == interim
    assert (project / "dvc.lock").read_bytes() == lock
    assert out_of_date(project) == set()


def _files(folder):
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_a_synthetic_run_with_another_data_path_is_refused_before_anything_is_removed(project):
    before = _files(project / "data")
    out = run(["dvc", "exp", "run", "-S", "data.path=/nonexistent"], project, check=False)
    run(["git", "checkout", "--", "params.yaml"], project)
    assert out.returncode != 0
    assert (
        "data.source synthetic reads the synthesize stage's output data/raw/synthetic, so "
        "data.path must be 'data/raw/synthetic', not '/nonexistent'"
    ) in out.stdout + out.stderr
    assert _files(project / "data") == before
    assert out_of_date(project) == set()


def test_a_missing_real_data_path_says_what_the_source_reads_there(tmp_path):
    from postergenre.pipeline.check import check_data_paths

    data = {"source": "movielens", "path": str(tmp_path / "nowhere"), "posters": ""}
    with pytest.raises(ValueError) as err:
        check_data_paths(data, "data/raw/synthetic")
    message = str(err.value)
    assert message.count(str(tmp_path / "nowhere")) == 1  # absolute: not repeated as "resolved"
    assert "links.csv" in message and "docs/data.md" in message and "nothing was changed" in message

"""The whole DAG through DVC itself, in a scratch copy of the repository, on tiny synthetic data."""

import json
import shutil

import pytest
import yaml

from tests.conftest import run, tracking_uri


def test_repro_writes_metrics_with_trivial_predictors_beside(project):
    metrics = json.loads((project / "metrics" / "baseline.json").read_text())
    test = metrics["test"]
    assert set(test) == {"at_0.5", "scores", "all_zeros", "label_frequency"}
    for name in ("all_match", "at_least_one_match", "binary_accuracy", "hamming_loss",
                 "micro_f1", "macro_f1", "samples_f1"):
        assert 0.0 <= test["at_0.5"][name] <= 1.0
    assert test["all_zeros"]["micro_f1"] == 0.0
    assert test["at_0.5"]["at_least_one_match"] > test["all_zeros"]["at_least_one_match"]
    assert metrics["n_test"] >= 10


def test_every_method_has_metrics_tuned_thresholds_plots_and_a_report_row(project):
    report = (project / "reports" / "results.md").read_text()
    for method in ("mlknn", "ovr", "custom", "resnet34", "head", "mlknn_features"):
        metrics = json.loads((project / "metrics" / f"{method}.json").read_text())
        assert {"at_0.5", "tuned", "scores"} <= set(metrics["test"])
        assert 0 <= metrics["test"]["scores"]["macro_roc_auc"] <= 1
        assert (project / "plots" / method / "gallery.png").stat().st_size > 1000
        per_genre = json.loads((project / "plots" / method / "per_genre.json").read_text())
        assert len(per_genre) == metrics["n_genres"]
        assert f"| {method} |" in report
    history = json.loads((project / "plots" / "custom" / "training.json").read_text())
    assert history[0]["epoch"] == 1 and "dev_loss" in history[0]
    assert "0.9062" in report  # the study's ResNet34 binary accuracy, beside ours


def test_second_repro_is_up_to_date(project):
    out = run(["dvc", "status"], project)
    assert "up to date" in out.stdout


def test_forced_repro_gives_byte_identical_metrics(project):
    before = (project / "metrics" / "baseline.json").read_bytes()
    run(["dvc", "repro", "--force", "evaluate-baseline"], project)  # and every stage upstream
    assert (project / "metrics" / "baseline.json").read_bytes() == before


def test_each_train_and_evaluate_logs_one_mlflow_run(project):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(project))
    experiment = client.get_experiment_by_name("postergenre")
    runs = client.search_runs([experiment.experiment_id])
    stages = sorted(r.data.tags["stage"] for r in runs if r.data.tags["stage"].endswith("-baseline"))
    # one `dvc repro` and one `dvc repro --force` (if that test ran first) each log both stages
    assert set(stages) == {"train-baseline", "evaluate-baseline"}
    assert stages.count("train-baseline") == stages.count("evaluate-baseline")
    run_ = next(r for r in runs if r.data.tags["stage"] == "evaluate-baseline")
    assert len(run_.data.tags["git_sha"]) == 40
    assert "dvc_exp_name" in run_.data.tags
    assert run_.data.params["methods.baseline.size"] == "64x64"
    assert "test.at_0.5.micro_f1" in run_.data.metrics


def test_misspelt_key_from_exp_run_fails_with_its_name(project):
    # DVC refuses `-S data.sorce=...` itself; `+data.sorce=...` adds the key, which we refuse.
    out = run(["dvc", "exp", "run", "-S", "+data.sorce=tmdb"], project, check=False)
    run(["git", "checkout", "--", "params.yaml"], project)
    assert out.returncode != 0
    assert "unknown key 'data.sorce'" in out.stdout + out.stderr


def test_exp_run_with_new_k_reruns_only_the_knn_stages(project):
    out = run(["dvc", "exp", "run", "-S", "k=5"], project)
    ran = {line.split("'")[1] for line in out.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"check-params", "train-mlknn", "train-ovr", "evaluate-mlknn", "evaluate-ovr",
                   "train-mlknn_features", "evaluate-mlknn_features", "report"}
    run(["git", "checkout", "--", "."], project)
    run(["dvc", "checkout", "-q"], project)


def test_metrics_diff_across_branches_shows_what_changed(project):
    base = run(["git", "rev-parse", "--abbrev-ref", "HEAD"], project).stdout.strip()
    run(["git", "checkout", "-qb", "k3"], project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["k"] = 3
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "k=3"], project)
    out = run(["dvc", "metrics", "diff", base, "k3", "--json"], project)
    diff = json.loads(out.stdout)
    changed = {path for path, rows in diff.items() if any(r.get("diff") for r in rows.values())}
    assert "metrics/mlknn.json" in changed
    assert "metrics/baseline.json" not in changed
    run(["git", "checkout", "-q", base], project)
    run(["dvc", "checkout", "-q"], project)


def test_evaluate_refuses_a_model_from_another_vocabulary(project, tmp_path):
    import shutil as sh

    other = tmp_path / "other_model"
    sh.copytree(project / "models" / "baseline", other)
    card = json.loads((other / "model.json").read_text())
    card["genres"] = list(reversed(card["genres"]))
    (other / "model.json").write_text(json.dumps(card))
    out = run(["postergenre", "evaluate", "baseline", "--model", str(other), "--out",
               str(tmp_path / "m.json")], project, check=False)
    assert out.returncode == 2 and "another genre vocabulary" in out.stderr
    assert not (tmp_path / "m.json").exists()


def test_evaluate_on_an_empty_test_split_is_a_clear_error(project, tmp_path):
    split = project / "data" / "split" / "test.txt"
    saved = split.read_bytes()
    try:
        split.write_text("")
        out = run(["postergenre", "evaluate", "baseline", "--out", str(tmp_path / "m.json")],
                  project, check=False)
    finally:
        split.write_bytes(saved)
    assert out.returncode == 2 and "split is empty" in out.stderr


def test_predict_gives_the_scores_evaluate_computes(project, monkeypatch):
    import numpy as np

    from postergenre import dataset
    from postergenre.methods import load_model
    from postergenre.predict import predict_posters

    monkeypatch.chdir(project)
    genres = dataset.read_genres()
    for method in ("mlknn", "custom", "head", "mlknn_features"):
        model = load_model(f"models/{method}")
        test = model.inputs("test", genres)  # the feature methods: the embed stage's cache
        expected = model.predict_proba(test.X)
        posters = [project / "data" / "raw" / "synthetic" / "posters" / f"{i}.jpg" for i in test.ids]
        result = predict_posters(f"models/{method}", posters)
        got = np.array([[p["scores"][g] for g in genres] for p in result["predictions"]])
        assert [p["poster"] for p in result["predictions"]] == [str(p) for p in posters]
        assert np.allclose(got, expected, rtol=0, atol=2e-6), method
        assert [p["genres"] for p in result["predictions"]] == [
            [genres[j] for j in np.flatnonzero(row >= model.thresholds)] for row in expected], method


def test_embed_stage_records_the_wheel_weights_it_used(project):
    from postergenre import backbone as bb

    info = json.loads((project / "data" / "features" / "embed.json").read_text())
    assert info["weights_sha256"] == bb.file_sha256(bb.wheel_weights_path())
    assert "seconds" not in info and "posters_per_s" not in info  # timing is not a cached output
    timing = json.loads((project / "metrics" / "embed.json").read_text())
    assert timing["posters_per_s"] > 0
    import numpy as np

    features = np.load(project / "data" / "features" / "efficientnet_lite0.npy")
    manifest = (project / "data" / "resized" / "manifest.csv").read_text().splitlines()
    assert features.shape == (len(manifest) - 1, 1280) and np.isfinite(features).all()
    card = json.loads((project / "models" / "head" / "model.json").read_text())
    assert card["state"]["backbone_sha256"] == info["weights_sha256"]
    assert card["state"]["chosen_weight_decay"] in card["params"]["weight_decay"]


def test_predict_reports_an_unreadable_file_and_predicts_the_others(project, tmp_path):
    folder = tmp_path / "new"
    folder.mkdir()
    shutil.copy(project / "data" / "raw" / "synthetic" / "posters" / "1.jpg", folder / "a.jpg")
    (folder / "b.jpg").write_text("not a poster")
    out = run(["postergenre", "predict", "--json", "--model", "models/custom", str(folder)],
              project)
    result = json.loads(out.stdout)
    assert [p["poster"] for p in result["predictions"]] == [str(folder / "a.jpg")]
    assert len(result["predictions"][0]["top_k"]) == 3
    assert result["errors"] == [{"poster": str(folder / "b.jpg"), "reason": "not_an_image",
                                 "detail": "no image format recognised"}]


def test_exp_run_with_a_missing_data_path_changes_nothing(project):
    interim = (project / "data" / "interim" / "movies.csv").read_bytes()
    lock = (project / "dvc.lock").read_bytes()
    out = run(["dvc", "exp", "run", "-S", "data.source=movielens", "-S", "data.path=/nowhere/posters"],
              project, check=False)
    run(["git", "checkout", "--", "params.yaml"], project)
    assert out.returncode != 0
    assert "data.path '/nowhere/posters' does not exist" in out.stdout + out.stderr
    assert (project / "data" / "interim" / "movies.csv").read_bytes() == interim
    assert (project / "dvc.lock").read_bytes() == lock
    assert "up to date" in run(["dvc", "status"], project).stdout


def _damaged(project, tmp_path, method, damage):
    folder = tmp_path / method
    shutil.copytree(project / "models" / method, folder)
    damage(folder)
    poster = project / "data" / "raw" / "synthetic" / "posters" / "1.jpg"
    return run(["postergenre", "predict", "--model", str(folder), str(poster)], project, check=False)


def _truncate(name):
    def damage(folder):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:len(data) // 2])
    return damage


def _edit_card(edit):
    def damage(folder):
        card = json.loads((folder / "model.json").read_text())
        edit(card)
        (folder / "model.json").write_text(json.dumps(card))
    return damage


@pytest.mark.parametrize("method, damage, message", [
    ("custom", _truncate("weights.pt"), "weights.pt: cannot be read"),
    ("head", _truncate("head.pt"), "head.pt: cannot be read"),
    ("head", _truncate("backbone.pt"), "backbone.pt: cannot be read"),
    ("mlknn", _truncate("train_inputs.npy"), "train_inputs.npy: cannot be read"),
    ("custom", lambda f: (f / "weights.pt").unlink(), "weights.pt: missing"),
    ("custom", _edit_card(lambda c: c.pop("thresholds")), "model.json: missing key(s) thresholds"),
    ("custom", lambda f: (f / "model.json").write_text('{"method": "cus'), "model.json: not valid JSON"),
    ("custom", _edit_card(lambda c: (c["genres"].append("Extra"), c["thresholds"].append(0.5))),
     "do not fit its model.json"),
    ("custom", _edit_card(lambda c: c["genres"].append("Extra")), "genres but"),
])
def test_a_damaged_model_folder_is_a_one_line_error_naming_what_is_wrong(project, tmp_path, method,
                                                                         damage, message):
    out = _damaged(project, tmp_path, method, damage)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr


def test_predict_refuses_a_top_k_below_one(project):
    out = run(["postergenre", "predict", "--model", "models/custom", "--top-k", "0", "x.jpg"], project,
              check=False)
    assert out.returncode == 2 and "--top-k: must be at least 1" in out.stderr


def test_a_model_folder_cannot_raise_the_decompression_bomb_limit(project, tmp_path):
    from PIL import Image

    folder = tmp_path / "custom"
    shutil.copytree(project / "models" / "custom", folder)
    card = json.loads((folder / "model.json").read_text())
    card["preprocess"]["max_pixels"] = 10**12
    (folder / "model.json").write_text(json.dumps(card))
    Image.new("RGB", (8000, 7000)).save(tmp_path / "big.png")  # 56 megapixels
    out = run(["postergenre", "predict", "--json", "--model", str(folder), str(tmp_path / "big.png")],
              project, check=False)
    assert out.returncode == 2 and "too_many_pixels" in out.stderr

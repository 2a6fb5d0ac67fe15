"""The whole DAG through DVC itself, in a scratch copy of the repository, on tiny synthetic data."""

import json
import re
import shutil

import pytest

from tests.conftest import chromium, out_of_date, run, tracking_uri


def test_repro_writes_metrics_with_trivial_predictors_beside(project):
    metrics = json.loads((project / "metrics" / "details" / "baseline.json").read_text())
    test = metrics["test"]
    assert set(test) == {"at_0.5", "scores", "all_zeros", "label_frequency", "intervals"}
    for name in (
        "all_match",
        "at_least_one_match",
        "binary_accuracy",
        "hamming_loss",
        "micro_f1",
        "macro_f1",
        "samples_f1",
    ):
        assert 0.0 <= test["at_0.5"][name] <= 1.0
    assert test["all_zeros"]["micro_f1"] == 0.0
    assert test["at_0.5"]["at_least_one_match"] > test["all_zeros"]["at_least_one_match"]
    assert metrics["n_test"] >= 10


def test_every_method_has_metrics_tuned_thresholds_plots_and_a_report_row(project):
    report = (project / "reports" / "results.md").read_text()
    for method in ("mlknn", "ovr", "custom", "resnet34", "head", "mlknn_features", "ensemble"):
        metrics = json.loads((project / "metrics" / "details" / f"{method}.json").read_text())
        assert {"at_0.5", "tuned", "decided", "scores"} <= set(metrics["test"])
        card = json.loads((project / "models" / method / "model.json").read_text())
        assert {k: metrics["test"]["decided"][k] for k in ("top_k", "lift")} == {
            k: card["operating_point"][k] for k in ("top_k", "lift")
        }
        assert 0 <= metrics["test"]["scores"]["macro_roc_auc"] <= 1
        for picture in ("gallery.png", "pr_curves.png", "f1.png"):
            assert (project / "plots" / method / picture).stat().st_size > 1000
        per_genre = json.loads((project / "plots" / method / "per_genre.json").read_text())
        assert len(per_genre) == metrics["n_genres"]
        assert f"| {method} |" in report
    rows = json.loads((project / "plots" / "custom" / "training.json").read_text())
    # one epoch here, of two batches (128 posters, 64 a batch): a train-loss point after each
    # (a quarter of an epoch where there are more batches), and the dev loss at its end
    assert [r["epoch"] for r in rows if r["curve"] == "train"] == [0.5, 1.0]
    assert [r["epoch"] for r in rows if r["curve"] == "dev"] == [1]
    assert "0.9062" in report  # the study's ResNet34 binary accuracy, beside ours


def test_the_headline_metrics_file_is_short_and_the_details_sit_beside_it(project):
    from postergenre.pipeline.evaluate import HEADLINE

    for method in ("baseline", "mlknn", "custom", "head"):
        head = json.loads((project / "metrics" / f"{method}.json").read_text())
        details = json.loads((project / "metrics" / "details" / f"{method}.json").read_text())
        assert set(head) == set(HEADLINE) | {"ci95", "n_train"}
        train_ids = (project / "data" / "split" / "train.txt").read_text().split()
        assert head["n_train"] == details["n_train"] == len(train_ids)
        test = details["test"]
        decided = test.get("decided", test["at_0.5"])  # the random baseline has no thresholds
        assert head["mAP"] == test["scores"]["mAP"]
        # the bootstrap's 95% intervals of the four, as the details give them
        assert set(head["ci95"]) == {"mAP", "macro_roc_auc", "micro_f1", "macro_f1"}
        assert head["ci95"] == {
            k: {"low": test["intervals"][k][0], "high": test["intervals"][k][1]} for k in head["ci95"]
        }
        assert test["intervals"]["resamples"] == 1000
        assert all(c["low"] <= c["high"] for c in head["ci95"].values())
        assert head["micro_f1"] == decided["micro_f1"] and head["macro_f1"] == decided["macro_f1"]
        assert head["hamming_loss"] == test["at_0.5"]["hamming_loss"]
    # the details are git-tracked (DVC writes no .gitignore entry for them), not cached
    ignored = run(["git", "check-ignore", "-q", "metrics/details/head.json"], project, check=False)
    assert ignored.returncode == 1
    # `dvc exp show`: eight numbers a method and their intervals, none of the details
    out = run(["dvc", "exp", "show", "--json"], project)
    (workspace, *_) = json.loads(out.stdout)
    files = workspace["data"]["metrics"]
    assert "metrics/details/head.json" not in files
    assert set(files["metrics/head.json"]["data"]) == set(HEADLINE) | {"ci95", "n_train"}
    # still diffable by name
    shown = run(["dvc", "metrics", "show", "--json", "metrics/details/head.json"], project)
    assert "label_frequency" in shown.stdout


def test_a_method_without_epochs_has_an_empty_curve_and_says_so(project):
    # dvc.yaml's foreach gives every train stage the same outputs: no rows where it fits in one pass
    assert json.loads((project / "plots" / "mlknn" / "training.json").read_text()) == []
    assert json.loads((project / "plots" / "baseline" / "training.json").read_text()) == []
    assert (project / "plots" / "mlknn" / "training.png").stat().st_size > 1000
    for method in ("custom", "resnet34", "head"):
        rows = json.loads((project / "plots" / method / "training.json").read_text())
        assert {r["curve"] for r in rows} >= {"train", "dev"} or method == "head"
        assert (project / "plots" / method / "training.png").stat().st_size > 1000
    report = (project / "reports" / "results.md").read_text()
    assert (
        "| mlknn | [png](../plots/mlknn/pr_curves.png) | [png](../plots/mlknn/f1.png) | (no epochs) |"
    ) in report


def test_dvc_plots_show_colours_each_genre_and_each_curve(project, tmp_path):
    out = tmp_path / "plots"
    run(["dvc", "plots", "show", "-o", str(out)], project)
    html = (out / "index.html").read_text()
    assert html.count('"color": {"field": "genre"') == 8  # a PR chart per method
    assert html.count('"color": {"field": "curve"') == 3  # custom, resnet34, head
    assert html.count('"color": {"field": "threshold"') == 8  # F1 bars: 0.5 beside tuned
    assert '"threshold": "tuned"' in html and '"curve": "dev"' in html


def test_make_plots_draws_every_chart_with_the_network_blocked(project, tmp_path):
    """The page `make plots` writes holds the Vega libraries: opened in headless Chromium with
    every request but the page's own files refused, each interactive chart draws (an svg or
    canvas in its div) and nothing is asked of the network."""
    from playwright.sync_api import sync_playwright

    out = tmp_path / "offline"
    shown = run(["python", "-m", "postergenre.apps.plots", "--out", str(out)], project)
    assert f"offline plots: {out / 'index.html'}" in shown.stdout
    page_file = out / "index.html"
    html = page_file.read_text()
    assert "cdn.jsdelivr.net" not in html
    charts = re.findall(r"vegaEmbed\('#([\w-]+)'", html)  # one div a chart, drawn into by Vega
    assert len(charts) >= 19  # every JSON plot of dvc.yaml: PR curves, F1 bars, training curves
    outside: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    drawn_js = f"() => {charts}.map(id => !!document.querySelector(`#${{id}} .marks`))"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.route("**/*", only_files)
            page.goto(page_file.as_uri())
            # Vega draws each chart into an svg or canvas of class "marks"
            page.wait_for_function(f"() => ({drawn_js})().every(Boolean)", timeout=60_000)
            drawn = page.evaluate(drawn_js)
        finally:
            browser.close()
    assert len(drawn) == len(charts) and all(drawn)
    assert outside == []


def test_the_report_links_pictures_that_exist(project):
    import re

    report = (project / "reports" / "results.md").read_text()
    links = re.findall(r"\]\((\.\./plots/[^)]+\.png)\)", report)
    assert len(links) >= 7 * 3
    for link in links:
        assert (project / "reports" / link).resolve().is_file(), link


def test_stage_logs_are_time_stamped_and_free_of_warnings(project):
    log = (project.parent / "repro.log").read_text()
    ours = [line for line in log.splitlines() if " INFO " in line or " WARNING " in line]
    assert len(ours) > 20
    assert "Downloading artifacts" not in log  # MLflow copies model folders; nothing downloads
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in ours)
    assert "Warning" not in log and "warnings.warn" not in log
    assert re.search(r"INFO __main__: embed: \d+ x 1280 features \(efficientnet_lite0, squash\) in", log)


def test_second_repro_is_up_to_date_but_for_the_tidy_stage(project):
    assert out_of_date(project) == set()
    assert json.loads(run(["dvc", "status", "--json"], project).stdout) == {"tidy": ["always changed"]}


def test_forced_repro_gives_byte_identical_metrics_and_references_the_logged_model(project):
    """Every stage upstream of evaluate@mlknn forced: the same metrics to the byte, and the same
    model, which MLflow is not given again (the train run references the logged model: the
    artifact store grows by the runs' own small files, not the 1.5 MB folder; no new version)."""
    from mlflow.tracking import MlflowClient

    from postergenre.runtime.tracking import folder_sha256

    client = MlflowClient(tracking_uri=tracking_uri(project))
    name, digest = "postergenre-mlknn", folder_sha256(project / "models" / "mlknn")

    def latest():
        return max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))

    def files(folder) -> dict[str, int]:
        return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}

    was = latest()
    before, store = (project / "metrics" / "mlknn.json").read_bytes(), files(project / "mlartifacts")
    run(["dvc", "repro", "--force", "evaluate@mlknn"], project)  # and every stage upstream
    assert (project / "metrics" / "mlknn.json").read_bytes() == before
    added = {p: n for p, n in files(project / "mlartifacts").items() if p not in store}
    folder = sum(files(project / "models" / "mlknn").values())
    # the two runs' own files (the model card, metrics, plots), no logged model's
    assert added and not [p for p in added if "/models/" in f"/{p}"], sorted(added)
    assert folder > 1_000_000 and sum(added.values()) < folder, (folder, sorted(added.items()))
    experiment = client.get_experiment_by_name("postergenre")
    (train,) = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.stage = 'train-mlknn'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    model_id = train.data.tags["model_id"]
    assert train.data.tags["model_reused"] == "true"
    assert [o.model_id for o in train.outputs.model_outputs] == [model_id]
    now = latest()
    assert now.tags["model_sha256"] == digest and now.source == f"models:/{model_id}"
    if was.tags["model_sha256"] == digest:  # (an experiment on this copy may have trained another)
        assert now.version == was.version


def test_each_train_and_evaluate_logs_one_mlflow_run(project):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(project))
    experiment = client.get_experiment_by_name("postergenre")
    runs = client.search_runs([experiment.experiment_id])
    stages = sorted(r.data.tags["stage"] for r in runs if r.data.tags["stage"].endswith("-baseline"))
    # one `dvc repro` (and any forced rerun) logs both stages
    assert set(stages) == {"train-baseline", "evaluate-baseline"}
    assert stages.count("train-baseline") == stages.count("evaluate-baseline")
    run_ = next(r for r in runs if r.data.tags["stage"] == "evaluate-baseline")
    assert len(run_.data.tags["git_sha"]) == 40
    assert "dvc_exp_name" in run_.data.tags
    assert run_.data.params["methods.baseline.size"] == "64x64"
    assert "test.at_0.5.micro_f1" in run_.data.metrics
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_mlflow_runs_say_what_data_and_model_they_are_about_and_are_linked(project):
    from mlflow.tracking import MlflowClient

    from postergenre.runtime.tracking import folder_sha256

    client = MlflowClient(tracking_uri=tracking_uri(project))
    experiment = client.get_experiment_by_name("postergenre")
    # the runs of the model in models/custom (other tests train custom elsewhere in this project)
    model_sha = folder_sha256(project / "models" / "custom")
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.model_sha256 = '{model_sha}'",
        order_by=["attributes.start_time DESC"],
    )
    card = json.loads((project / "models" / "custom" / "model.json").read_text())
    train = next(r for r in runs if r.data.tags["stage"] == "train-custom")
    evaluate = next(r for r in runs if r.data.tags["stage"] == "evaluate-custom")
    for r in (train, evaluate):
        assert r.data.params["data.source"] == "synthetic"
        assert r.data.params["data.path"] == "data/raw/synthetic"
        assert r.data.tags["data_sha256"] == card["trained_on"]["sha256"]
        assert r.data.tags["git_dirty"] in ("true", "false")
    assert evaluate.data.tags["model_sha256"] == train.data.tags["model_sha256"]
    assert evaluate.data.tags["train_run_id"] == train.info.run_id
    assert evaluate.data.tags["mlflow.parentRunId"] == train.info.run_id
    assert client.get_run(train.info.run_id).data.tags["evaluate_run_id"] == evaluate.info.run_id
    names = {a.path for a in client.list_artifacts(train.info.run_id, "plots")}
    assert names == {"plots/training.json", "plots/training.png"}
    assert {a.path for a in client.list_artifacts(train.info.run_id, "model")} == {"model/model.json"}
    names = {a.path for a in client.list_artifacts(evaluate.info.run_id, "plots")}
    assert {"plots/pr_curves.png", "plots/f1.png", "plots/gallery.png"} <= names
    names = {a.path for a in client.list_artifacts(evaluate.info.run_id, "metrics")}
    assert names == {"metrics/custom.json", "metrics/details"}
    details = client.list_artifacts(evaluate.info.run_id, "metrics/details")
    assert [a.path for a in details] == ["metrics/details/custom.json"]


def test_evaluate_refuses_a_model_from_another_vocabulary(project, tmp_path):
    import shutil as sh

    other = tmp_path / "other_model"
    sh.copytree(project / "models" / "baseline", other)
    card = json.loads((other / "model.json").read_text())
    card["genres"] = list(reversed(card["genres"]))
    (other / "model.json").write_text(json.dumps(card))
    out = run(
        ["postergenre", "evaluate", "baseline", "--model", str(other), "--out", str(tmp_path / "m.json")],
        project,
        check=False,
    )
    assert out.returncode == 2 and "another genre vocabulary" in out.stderr
    assert not (tmp_path / "m.json").exists()


def test_a_method_stage_reads_the_data_its_command_names(project, tmp_path):
    """dvc.yaml's `--data data`: the same stage pointed at another copy of the data stages'
    outputs reads that copy (here, one whose test split is its first 5 posters)."""
    other = tmp_path / "data"
    for sub in ("interim", "resized", "split"):
        shutil.copytree(project / "data" / sub, other / sub)
    ids = (other / "split" / "test.txt").read_text().split()
    (other / "split" / "test.txt").write_text("\n".join(ids[:5]) + "\n")
    run(
        [
            "python",
            "-m",
            "postergenre.pipeline.evaluate",
            "baseline",
            "--data",
            str(other),
            "--model",
            "models/baseline",
            "--out",
            str(tmp_path / "m.json"),
            "--plots",
            str(tmp_path / "plots"),
        ],
        project,
    )
    ours = json.loads((project / "metrics" / "details" / "baseline.json").read_text())
    theirs = json.loads((tmp_path / "details" / "m.json").read_text())
    assert ours["n_test"] == len(ids) > 5 and theirs["n_test"] == 5


def test_evaluate_on_an_empty_test_split_is_a_clear_error(project, tmp_path):
    split = project / "data" / "split" / "test.txt"
    saved = split.read_bytes()
    try:
        split.write_text("")
        out = run(
            ["postergenre", "evaluate", "baseline", "--out", str(tmp_path / "m.json")], project, check=False
        )
    finally:
        split.write_bytes(saved)
    assert out.returncode == 2 and "split is empty" in out.stderr


def test_predict_gives_the_scores_evaluate_computes(project, monkeypatch):
    import numpy as np

    from postergenre.apps.predict import predict_posters
    from postergenre.core import dataset
    from postergenre.methods import load_model

    monkeypatch.chdir(project)
    genres = dataset.read_genres()
    for method in ("mlknn", "custom", "head", "mlknn_features", "ensemble"):
        model = load_model(f"models/{method}")
        test = model.inputs("test", genres)  # the feature methods: the embed stage's cache
        expected = model.predict_proba(test.X)
        posters = [project / "data" / "raw" / "synthetic" / "posters" / f"{i}.jpg" for i in test.ids]
        result = predict_posters(f"models/{method}", posters)
        got = np.array([[p["scores"][g] for g in genres] for p in result["predictions"]])
        assert [p["poster"] for p in result["predictions"]] == [str(p) for p in posters]
        assert np.allclose(got, expected, rtol=0, atol=2e-6), method
        # the operating point: its top-k genres plus those over the raised thresholds
        assert [p["genres"] for p in result["predictions"]] == [
            [genres[j] for j in np.flatnonzero(row)] for row in model.decide(expected)
        ], method
        k = model.operating_point["top_k"]
        assert all(len(p["genres"]) >= k for p in result["predictions"]), method


def test_embed_stage_records_the_wheel_weights_it_used(project):
    from postergenre.core import backbone as bb

    folder = project / "data" / "features" / "efficientnet_lite0" / "squash"
    info = json.loads((folder / "embed.json").read_text())
    assert (info["backbone"], info["view"], info["side"]) == ("efficientnet_lite0", "squash", 224)
    assert info["weights_sha256"] == bb.file_sha256(bb.wheel_weights_path())
    assert "seconds" not in info and "posters_per_s" not in info  # timing is not a cached output
    assert not (project / "metrics" / "embed").exists()  # nor a tracked one: the log has it
    speed = re.search(
        r"embed: \d+ x 1280 features \(efficientnet_lite0, squash\) in [\d.]+ s "
        r"\(([\d.]+) posters/s, 2 threads\)",
        (project.parent / "repro.log").read_text(),
    )
    assert speed and float(speed.group(1)) > 0
    import numpy as np

    features = np.load(folder / "features.npy")
    manifest = (project / "data" / "resized" / "manifest.csv").read_text().splitlines()
    assert features.shape == (len(manifest) - 1, 1280) and np.isfinite(features).all()
    card = json.loads((project / "models" / "head" / "model.json").read_text())
    assert card["state"]["backbone_sha256"] == {"efficientnet_lite0": info["weights_sha256"]}
    assert card["state"]["chosen_weight_decay"] in card["params"]["weight_decay"]


def test_predict_reports_an_unreadable_file_and_predicts_the_others(project, tmp_path):
    folder = tmp_path / "new"
    folder.mkdir()
    shutil.copy(project / "data" / "raw" / "synthetic" / "posters" / "1.jpg", folder / "a.jpg")
    (folder / "b.jpg").write_text("not a poster")
    out = run(["postergenre", "predict", "--json", "--model", "models/custom", str(folder)], project)
    result = json.loads(out.stdout)
    assert [p["poster"] for p in result["predictions"]] == [str(folder / "a.jpg")]
    assert len(result["predictions"][0]["top_k"]) == 3
    assert result["errors"] == [
        {"poster": str(folder / "b.jpg"), "reason": "not_an_image", "detail": "no image format recognised"}
    ]
    # the table: each listed score against its genre's threshold, the bad file said once
    out = run(["postergenre", "predict", "--model", "models/custom", str(folder)], project)
    text = out.stdout + out.stderr
    assert text.count("b.jpg") == 1 and "not predicted: not_an_image" in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.startswith("a.jpg"))
    card = json.loads((project / "models" / "custom" / "model.json").read_text())
    for genre, score in result["predictions"][0]["top_k"]:
        threshold = result["thresholds"][genre]
        assert f"{genre} {score:.3f} {'>=' if score >= threshold else '<'} {threshold:.3f}" in row
    assert "named: a genre scored at or above its threshold" in out.stdout
    assert len(result["thresholds"]) == len(card["genres"])


def test_model_card_says_what_it_was_trained_on_and_predict_warns_of_synthetic(project, tmp_path):
    import numpy as np

    from postergenre.core import dataset

    card = json.loads((project / "models" / "custom" / "model.json").read_text())
    train_ids = (project / "data" / "split" / "train.txt").read_text().split()
    assert card["trained_on"]["source"] == "synthetic"
    assert card["trained_on"]["posters"] == len(train_ids)
    assert len(card["trained_on"]["sha256"]) == 64
    # the hash is of what the model read: the same posters and labels give it again
    import os

    cwd = os.getcwd()
    os.chdir(project)
    try:
        data = dataset.load_split("train", card["size"], card["genres"])
        assert dataset.content_sha256(np.asarray(data.ids), data.X, data.Y) == card["trained_on"]["sha256"]
    finally:
        os.chdir(cwd)
    # the ensemble is fitted on dev alone, and its card says so; its train stage never had the
    # members score the training split
    ensemble = json.loads((project / "models" / "ensemble" / "model.json").read_text())["trained_on"]
    dev_ids = (project / "data" / "split" / "dev.txt").read_text().split()
    assert ensemble["split"] == "dev" and ensemble["posters"] == len(dev_ids)
    log = (project.parent / "repro.log").read_text()
    assert "scored the dev split" in log and "scored the train split" not in log
    synthetic = project / "data" / "raw" / "synthetic" / "posters" / "1.jpg"
    poster = shutil.copy(synthetic, tmp_path / "from-elsewhere.jpg")  # stands for a real one
    out = run(["postergenre", "predict", "--model", "models/custom", str(poster)], project)
    assert "never saw a real one" in out.stderr and "synthetic posters" in out.stderr
    result = json.loads(
        run(["postergenre", "predict", "--json", "--model", "models/custom", str(poster)], project).stdout
    )
    assert result["trained_on"]["source"] == "synthetic" and "never saw" in result["warning"]
    # posters of the synthetic set it was trained on need no such warning
    out = run(["postergenre", "predict", "--model", "models/custom", str(synthetic)], project)
    assert "WARNING" not in out.stderr
    # a model trained on real posters says nothing
    real = tmp_path / "real"
    shutil.copytree(project / "models" / "custom", real)
    card["trained_on"]["source"] = "movielens"
    (real / "model.json").write_text(json.dumps(card))
    out = run(["postergenre", "predict", "--model", str(real), str(poster)], project)
    assert "WARNING" not in out.stderr


def test_predict_table_keeps_every_genre_and_orders_them_by_score(project):
    from postergenre.apps.predict import format_table

    many = ["Science Fiction", "Documentary", "Animation", "Adventure", "Romance"]
    result = {
        "predictions": [
            {
                "poster": "/x/long-poster-name.jpg",
                "genres": many,
                "scores": {g: 0.5 + i / 10 for i, g in enumerate(many)},
                "top_k": [["Romance", 0.9]],
            }
        ],
        "errors": [],
    }
    line = format_table(result).splitlines()[1]
    assert "Romance, Adventure, Animation, Documentary, Science Fiction" in line


def _damaged(project, tmp_path, method, damage):
    folder = tmp_path / method
    shutil.copytree(project / "models" / method, folder)
    damage(folder)
    poster = project / "data" / "raw" / "synthetic" / "posters" / "1.jpg"
    return run(["postergenre", "predict", "--model", str(folder), str(poster)], project, check=False)


def _truncate(name):
    def damage(folder):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return damage


def _edit_card(edit):
    def damage(folder):
        card = json.loads((folder / "model.json").read_text())
        edit(card)
        (folder / "model.json").write_text(json.dumps(card))

    return damage


@pytest.mark.parametrize(
    "method, damage, message",
    [
        ("custom", _truncate("weights.pt"), "weights.pt: cannot be read"),
        ("head", _truncate("head.pt"), "head.pt: cannot be read"),
        (
            "head",
            _truncate("backbone-efficientnet_lite0.pt"),
            "backbone-efficientnet_lite0.pt: cannot be read",
        ),
        ("mlknn", _truncate("train_inputs.npy"), "train_inputs.npy: cannot be read"),
        ("custom", lambda f: (f / "weights.pt").unlink(), "weights.pt: missing"),
        ("custom", _edit_card(lambda c: c.pop("thresholds")), "model.json: missing key(s) thresholds"),
        ("custom", lambda f: (f / "model.json").write_text('{"method": "cus'), "model.json: not valid JSON"),
        (
            "custom",
            _edit_card(lambda c: (c["genres"].append("Extra"), c["thresholds"].append(0.5))),
            "do not fit its model.json",
        ),
        ("custom", _edit_card(lambda c: c["genres"].append("Extra")), "genres but"),
    ],
)
def test_a_damaged_model_folder_is_a_one_line_error_naming_what_is_wrong(
    project, tmp_path, method, damage, message
):
    out = _damaged(project, tmp_path, method, damage)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr


def test_predict_refuses_a_top_k_below_one(project):
    out = run(
        ["postergenre", "predict", "--model", "models/custom", "--top-k", "0", "x.jpg"], project, check=False
    )
    assert out.returncode == 2 and "--top-k: must be at least 1" in out.stderr


def test_a_model_folder_cannot_raise_the_decompression_bomb_limit(project, tmp_path):
    from PIL import Image

    folder = tmp_path / "custom"
    shutil.copytree(project / "models" / "custom", folder)
    card = json.loads((folder / "model.json").read_text())
    card["preprocess"]["max_pixels"] = 10**12
    (folder / "model.json").write_text(json.dumps(card))
    Image.new("RGB", (8000, 7000)).save(tmp_path / "big.png")  # 56 megapixels
    out = run(
        ["postergenre", "predict", "--json", "--model", str(folder), str(tmp_path / "big.png")],
        project,
        check=False,
    )
    assert out.returncode == 2 and "no poster could be predicted" in out.stderr
    assert [e["reason"] for e in json.loads(out.stdout)["errors"]] == ["too_many_pixels"]


def test_the_report_gives_intervals_and_ranks_a_pair_only_where_its_interval_excludes_0(project):
    """reports/results.md: every method's four with their 95% intervals, then every pair on the
    same resamples; 'higher' exactly where the difference's interval is above 0. The pairs are
    recomputed here from the resampled metrics the evaluate stages wrote."""
    import numpy as np

    from postergenre.core import bootstrap

    report = (project / "reports" / "results.md").read_text()
    details = {p.stem: json.loads(p.read_text()) for p in (project / "metrics" / "details").glob("*.json")}
    section = report.split("## 95% intervals", 1)[1].split("### Paired: mAP", 1)[0]
    for method, result in details.items():
        (row,) = [line for line in section.splitlines() if line.startswith(f"| {method} |")]
        lo, hi = result["test"]["intervals"]["mAP"]
        assert f"{result['test']['scores']['mAP']:.4f} [{lo:.4f}, {hi:.4f}]" in row
    pairs = report.split("### Paired: mAP", 1)[1].split("###", 1)[0]
    rows = [line.split(" | ") for line in pairs.splitlines() if line.startswith("| ") and "---" not in line][
        1:
    ]
    assert len(rows) == len(details) * (len(details) - 1) // 2
    for a, b, _, span, _, verdict in rows:
        low, high = (float(x) for x in span.strip("[]").split(", "))
        assert (verdict.strip(" |") == "higher") == (low > 0), (a, b, span, verdict)
        with (
            np.load(project / "metrics" / "bootstrap" / f"{a.strip('| ')}.npz") as ra,
            np.load(project / "metrics" / "bootstrap" / f"{b}.npz") as rb,
        ):
            expected = bootstrap.paired(ra["mAP"], rb["mAP"]).difference
        assert [round(low, 4), round(high, 4)] == [round(x, 4) for x in expected]

"""What a reader sees: the static pictures, progress lines, `postergenre compare`, the CLI's help."""

from __future__ import annotations

import itertools
import logging
import re
import statistics
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from postergenre.apps.cli import LIGHT_HELP
from postergenre.core import figures
from tests.conftest import REPO

GENRES = ["Drama", "Comedy", "Horror", "Action"]


def _png(path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image.convert("RGB")


def _rows():
    pr = [
        {"genre": g, "recall": r, "precision": round(1 - r * (j + 1) / 5, 4)}
        for j, g in enumerate(GENRES)
        for r in (0.0, 0.5, 1.0)
    ]
    f1 = [
        {"genre": g, "threshold": t, "f1": round(0.2 + 0.1 * j + (0.1 if t == "tuned" else 0), 3)}
        for j, g in enumerate(GENRES)
        for t in ("0.5", "tuned")
    ]
    training = [
        {"epoch": e, "loss": 1 / (e + 1), "curve": c} for e in (0.5, 1, 1.5, 2) for c in ("train", "dev")
    ]
    return pr, f1, training


def test_the_report_pictures_are_drawn_distinct_and_identical_on_a_rerun(tmp_path):
    pr, f1, training = _rows()
    for run in ("a", "b"):
        out = tmp_path / run
        figures.pr_curves_png(out / "pr.png", pr, GENRES, [0.9, 0.7, None, 0.4], [0.5, 0.3, 0.0, 0.2], "PR")
        figures.f1_bars_png(out / "f1.png", f1, GENRES, "F1")
        figures.training_png(out / "training.png", training, "loss")
    images = {name: _png(tmp_path / "a" / name) for name in ("pr.png", "f1.png", "training.png")}
    for name, image in images.items():
        pixels = np.asarray(image)
        assert image.width > 300 and image.height > 200, name
        # drawn, not blank: many colours, and some of them saturated (the curves and bars)
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, name
        assert (pixels.max(axis=2).astype(int) - pixels.min(axis=2) > 100).sum() > 200, name
        # the same data give the same bytes (no timestamp): a re-run stage changes nothing
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    shapes = {np.asarray(i).shape for i in images.values()}
    blobs = {np.asarray(i).tobytes() for i in images.values()}
    assert len(blobs) == 3 and len(shapes) >= 2


def test_the_gallery_marks_right_genres_green_and_wrong_ones_red(tmp_path):
    posters = np.full((2, 60, 40, 3), 128, dtype=np.uint8)
    Y = np.array([[1, 0, 0, 0], [0, 1, 0, 0]])
    Yhat = np.array([[1, 0, 1, 0], [0, 0, 0, 0]])  # one right, one wrong; none for the second
    P = np.array([[0.6, 0.1, 0.9, 0.2], [0.1, 0.3, 0.2, 0.1]])
    figures.gallery_png(
        tmp_path / "g.png",
        posters,
        ["A Very Long Title That Must Wrap Somewhere", "Short"],
        GENRES,
        Y,
        Yhat,
        P,
    )
    pixels = np.asarray(_png(tmp_path / "g.png")).astype(int)
    cell = pixels.shape[1] // 2
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    green = (pixels[..., 1] > 90) & (pixels[..., 0] < 40) & (pixels[..., 2] < 40)
    assert red[:, :cell].sum() > 20 and green[:, :cell].sum() > 20
    assert red[:, cell:].sum() == 0 and green[:, cell:].sum() == 0  # nothing predicted
    # readable type: text rows are more than 10 pixels tall
    dark = (pixels.max(axis=2) < 80)[240:, :cell]
    rows_with_text = np.flatnonzero(dark.any(axis=1))
    runs = np.split(rows_with_text, np.flatnonzero(np.diff(rows_with_text) > 1) + 1)
    assert max(len(r) for r in runs) >= 10


def test_the_gallery_lists_predicted_genres_by_score(tmp_path, monkeypatch):
    drawn = []
    from PIL import ImageDraw

    real = ImageDraw.ImageDraw.text

    def spy(self, xy, text, *args, **kwargs):
        drawn.append(text)
        return real(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    posters = np.zeros((1, 60, 40, 3), dtype=np.uint8)
    figures.gallery_png(
        tmp_path / "g.png",
        posters,
        ["T"],
        GENRES,
        np.array([[1, 1, 0, 0]]),
        np.array([[1, 1, 1, 1]]),
        np.array([[0.55, 0.95, 0.7, 0.6]]),
    )
    picked = [t for t in drawn if t[:1] in "✓✗"]
    assert picked == ["✓ Comedy 0.95", "✗ Horror 0.70", "✗ Action 0.60", "✓ Drama 0.55"]


def test_training_rows_draw_quarter_epochs_and_one_curve_pair_per_setting():
    from postergenre.pipeline.train import training_rows

    history = [
        {"epoch": 0, "dev_loss": 0.9, "dev_mAP": 0.1, "weight_decay": 1.0},
        {
            "epoch": 1,
            "train_loss": 0.5,
            "train_loss_quarters": [0.8, 0.6, 0.4, 0.2],
            "dev_loss": 0.45,
            "dev_mAP": 0.3,
            "weight_decay": 1.0,
        },
        {"epoch": 1, "train_loss": 0.6, "dev_loss": 0.5, "dev_mAP": 0.2, "weight_decay": 10.0},
        {"epoch": 2, "train_loss": 0.3, "dev_loss": 0.4, "dev_mAP": 0.4, "finetune": True},
    ]
    rows = training_rows(history)
    train = [(r["epoch"], r["loss"]) for r in rows if r["curve"] == "train (weight_decay 1)"]
    assert train == [(0.25, 0.8), (0.5, 0.6), (0.75, 0.4), (1.0, 0.2)]
    assert [(r["epoch"], r["loss"]) for r in rows if r["curve"] == "dev (weight_decay 1)"] == [
        (0, 0.9),
        (1, 0.45),
    ]
    assert {r["curve"] for r in rows} == {
        "train (weight_decay 1)",
        "dev (weight_decay 1)",
        "train (weight_decay 10)",
        "dev (weight_decay 10)",
        "train (finetune)",
        "dev (finetune)",
    }


def test_progress_logs_counts_rate_and_time_left(caplog, monkeypatch):
    from postergenre import progress

    clock = itertools.chain([0.0, 5.0, 12.0, 30.0, 40.0], itertools.repeat(50.0))
    monkeypatch.setattr(progress, "_now", lambda: next(clock))
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="postergenre.progress"):
        bar = progress.Progress("embed", 1000, "poster", every=10)  # t=0
        bar.update(100)  # t=5: too soon
        bar.update(200)  # t=12: 300 done, 25/s -> 700 left in 28 s
        bar.update(700)  # t=30, done: no "left" line
        bar.close()  # t=40: 25/s over the whole run
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "embed: 300/1,000 posters (30%), 25.0/s, 28s left"
    assert lines[-1].startswith("embed: 1,000/1,000 posters (100%)") and "in all" in lines[-1]
    assert len(lines) == 2
    quiet = progress.Progress("x", 5, enabled=False)
    quiet.update(5)
    quiet.close()
    assert progress.duration(65) == "1m05s" and progress.duration(3700) == "1h01m"


def _show_json(names_and_k):
    def state(name, k, map_):  # as `dvc exp show --json` gives them: the workspace has no name
        return {
            "rev": name,
            "name": None if name == "workspace" else name,
            "data": {
                "params": {"params.yaml": {"data": {"k": k, "seed": 0, "data": {"source": "synthetic"}}}},
                "metrics": {
                    f"metrics/{m}.json": {
                        "data": {
                            "mAP": map_ + i / 100,
                            "micro_f1": 0.5,
                            "ci95": {"mAP": {"low": map_ + i / 100 - 0.02, "high": map_ + i / 100 + 0.03}},
                        }
                    }
                    for i, m in enumerate(
                        ["baseline", "mlknn", "ovr", "custom", "resnet34", "head", "mlknn_features"]
                    )
                }
                | {"metrics/embed/efficientnet_lite0-squash.json": {"data": {"seconds": 3.0}}},
            },
        }

    workspace, *exps = [state(n, k, 0.1 * (i + 1)) for i, (n, k) in enumerate(names_and_k)]
    return [workspace | {"experiments": [{"name": e["name"], "revs": [e]} for e in exps]}]


def test_compare_fits_three_experiments_in_100_columns_with_intervals():
    from postergenre.apps.compare import DEFAULT_METRICS, experiments, table

    text = table(
        experiments(_show_json([("workspace", 10), ("k40-a-rather-long-experiment-name", 40), ("k3", 3)])),
        DEFAULT_METRICS,
    )
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0] == "params that differ: k"
    assert any(line.split() == ["k3", "k=3"] for line in lines)
    assert any(line.split() == ["workspace", "k=10"] for line in lines)
    header = next(line for line in lines if line.startswith("mAP"))
    assert header.split()[1:] == ["workspace", "k40-a-rather-long-expe", "k3"]
    rows = lines[lines.index(header) + 1 : lines.index(header) + 8]
    # a row per method (a metrics file of no method is left out), the interval beside each number
    assert [r.split()[0] for r in rows] == [
        "baseline",
        "mlknn",
        "ovr",
        "custom",
        "resnet34",
        "head",
        "mlknn_features",
    ]
    assert rows[1].split()[-3:] == ["0.3100", "[0.290,", "0.340]"]  # mlknn in k3
    assert rows[0].split()[1] == "0.1000"  # baseline in the workspace
    micro = lines.index(next(x for x in lines if x.startswith("micro_f1")))
    assert lines[micro + 1].split()[1:] == ["0.5000"] * 3  # no interval in the file: none shown
    missing = lines[lines.index(next(x for x in lines if x.startswith("macro_roc_auc"))) + 1]
    assert set(missing.split()[1:]) == {"-"}  # a metric the files lack is shown as missing


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "postergenre.apps.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_version_and_help_describe_every_subcommand():
    from postergenre import __version__

    out = _cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"postergenre {__version__}"
    import tomllib

    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"] == __version__
    train = " ".join(_cli("train", "--help").stdout.split())
    assert "fit one method on the train split" in train
    assert "one of baseline, custom, ensemble, head, lite, mlknn, mlknn_features, ovr, resnet34" in train
    download = " ".join(_cli("download-posters", "--help").stdout.split())
    assert "(default: 16)" in download and "{poster_path,imdb_id,tmdb_id}" in download
    assert "(default: w500)" in download
    predict = " ".join(_cli("predict", "--help").stdout.split())
    assert "(default: 3)" in predict and "decoded and resized exactly as the pipeline" in predict
    bad = _cli("train", "nosuchmethod")
    assert bad.returncode == 2 and "invalid choice: 'nosuchmethod'" in bad.stderr


@pytest.mark.parametrize("command", LIGHT_HELP)
def test_the_front_end_and_the_data_subcommands_help_without_torch(command):
    # how fast: bench/cli.py; here, that the heavy imports stay out
    code = (
        "import sys\nfrom postergenre.apps.cli import main\n"
        f"try:\n    main({[*command, '--help']!r})\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'sklearn', 'mlflow', 'dvc') if m in sys.modules]\n"
        "sys.exit(f'imported {heavy}' if heavy else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage: postergenre" in out.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_params_option_works_before_or_after_the_subcommand(where, tmp_path):
    params = (REPO / "params.yaml").read_text().replace("k: 10", "k: 0")
    p = tmp_path / "p.yaml"
    p.write_text(params)
    args = ["--params", str(p), "check-params"] if where == "before" else ["check-params", "--params", str(p)]
    out = _cli(*args)
    assert out.returncode == 2 and "'k' must be greater than or equal to 1, got 0" in out.stderr


def test_embedding_a_read_only_array_gives_no_warning():
    import warnings

    import torch

    from postergenre.core import backbone as bb

    X = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    X.flags.writeable = False  # as np.load(mmap_mode="r") gives
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = bb.to_input(X)
    assert isinstance(x, torch.Tensor) and x.shape == (2, 3, 8, 8)


def test_log_lines_carry_the_time():
    out = subprocess.run(
        [sys.executable, "-m", "postergenre.pipeline.check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = out.stderr.strip().splitlines()[-1]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|ERROR)", line), line


def test_progress_names_its_units_in_the_plural(monkeypatch):
    from postergenre import progress

    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    assert " 0/7 batches (0%)" in progress.Progress("custom epoch 1/5", 7, "batch").line(1.0)
    assert " 0/3 posters (0%)" in progress.Progress("embed", 3).line(1.0)


def test_quarter_losses_split_an_epochs_batches_in_four_or_fewer():
    from postergenre.methods.nets.training import quarter_losses

    # 5 batches: ends after batches 2, 3, 4, 5 (ceil(5 q / 4)); each part's loss per poster
    assert quarter_losses([2.0, 4.0, 3.0, 8.0, 1.0], [2, 2, 1, 4, 1]) == [1.5, 3.0, 2.0, 1.0]
    assert quarter_losses([3.0, 1.0], [3, 1]) == [1.0, 1.0]  # two batches: two points
    assert quarter_losses([], []) == []


def test_compare_seeds_gives_mean_and_sd_over_the_experiments_that_differ_in_seed_alone():
    from postergenre.apps.compare import experiments, seed_table

    def state(name, seed, k, value):
        return {
            "rev": name,
            "name": name,
            "data": {
                "params": {"params.yaml": {"data": {"seed": seed, "k": k}}},
                "metrics": {"metrics/head.json": {"data": {"mAP": value}}},
            },
        }

    runs = [state("s1", 1, 10, 0.20), state("s2", 2, 10, 0.22), state("s3", 3, 10, 0.27)]
    runs += [state("again", 1, 10, 0.99)]  # a second experiment of seed 1: counted once
    runs += [state("other-k", 1, 40, 0.5)]  # another setting with one seed: no group
    show = [runs[0] | {"experiments": [{"name": r["name"], "revs": [r]} for r in runs[1:]]}]
    lines = seed_table(experiments(show), ["mAP"]).splitlines()
    assert lines[0] == "3 seeds (1, 2, 3): s1, s2, s3"
    (row,) = [line for line in lines if line.startswith("head")]
    mean, sd = 0.23, statistics.stdev([0.20, 0.22, 0.27])
    assert row.split() == ["head", f"{mean:.4f}", "±", f"{sd:.4f}", "3"]
    assert "seed` alone" in seed_table(experiments([state("solo", 1, 10, 0.2)]), ["mAP"])


def _curve_state(name, max_train, n_train, value, seed=0):
    metrics = {
        f"metrics/{m}.json": {
            "data": {
                "mAP": value + d,
                "n_train": n_train,
                "ci95": {"mAP": {"low": value + d - 0.03, "high": value + d + 0.02}},
            }
        }
        for m, d in (("head", 0.1), ("custom", 0.0), ("mlknn", -0.05))
    }
    params = {"seed": seed, "split": {"max_train": max_train}}
    return {
        "rev": name,
        "name": name,
        "data": {"params": {"params.yaml": {"data": params}}, "metrics": metrics},
    }


def test_compare_seeds_marks_a_spread_wider_than_the_bootstrap_interval():
    from postergenre.apps.compare import experiments, seed_table

    runs = [_curve_state(f"s{i}", 0, 100, v, seed=i) for i, v in enumerate([0.1, 0.2, 0.3])]
    show = [runs[0] | {"experiments": [{"name": r["name"], "revs": [r]} for r in runs[1:]]}]
    lines = seed_table(experiments(show), ["mAP"]).splitlines()
    (row,) = [line for line in lines if line.startswith("head")]
    # sd 0.1 over the seeds; every interval 0.05 wide: a normal sd of 0.05 / 3.92
    assert row.split() == ["head", "0.3000", "±", "0.1000", "3", f"{0.05 / 3.919928:.4f}", "*"]
    assert lines[-1] == "* the seeds spread more than the bootstrap interval implies"


def test_compare_curve_orders_by_training_posters_and_draws_the_bands(tmp_path):
    from PIL import Image

    from postergenre.apps.compare import curve_png, curve_table, experiments

    runs = [
        _curve_state("full", 0, 800, 0.30),  # max_train 0: every training poster
        _curve_state("quarter", 200, 200, 0.20),
        _curve_state("half", 400, 400, 0.25),
        _curve_state("other-seed", 400, 400, 0.9, seed=7),  # differs in seed too: not on it
    ]
    show = [runs[0] | {"experiments": [{"name": r["name"], "revs": [r]} for r in runs[1:]]}]
    exps = experiments(show)
    lines = curve_table(exps, ["mAP"], "split.max_train", ["head", "custom"]).splitlines()
    assert lines[0] == "split.max_train: quarter=200, half=400, full=0"
    header = lines[lines.index("mAP by training posters") + 1]
    assert header.split() == ["200", "400", "800"]
    (row,) = [line for line in lines if line.startswith("head")]
    assert row.split()[1:4] == ["0.3000", "[0.270,", "0.320]"]
    assert not any(line.startswith("mlknn") for line in lines)
    png = tmp_path / "curve.png"
    curve_png(png, exps, ["mAP", "macro_roc_auc"], "split.max_train", ["head", "custom"])
    assert Image.open(png).size == (840, 360)
    assert "alone" in curve_table(exps[:1], ["mAP"], "split.max_train", None)

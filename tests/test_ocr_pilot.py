"""tools/ocr_pilot.py on a hand-made run: a stand-in `tesseract` on PATH that prints the text a
poster file holds, so the reading, its failures, the resumed cache and the report are real."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "ocr_pilot.py"

# Prints the poster file's contents (the "text on the poster"), logs each call, and fails on a
# file whose text says so, as tesseract does on an image it cannot read.
FAKE_TESSERACT = """#!/bin/sh
echo "$1" >> "$(dirname "$0")/calls.log"
if grep -q UNREADABLE "$1"; then echo "Error: cannot read $1" >&2; exit 1; fi
cat "$1"
"""


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("ocr_pilot", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def fake_bin(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "tesseract"
    script.write_text(FAKE_TESSERACT)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def test_a_poster_that_fails_is_kept_with_its_reason_and_a_rerun_reads_only_the_rest(
    tool, tmp_path, fake_bin
):
    posters = {}
    for movie_id, text in (("1", "NIGHT OF\n  THE BLOOD"), ("2", "UNREADABLE"), ("3", "a love story")):
        posters[movie_id] = tmp_path / f"{movie_id}.jpg"
        posters[movie_id].write_text(text)
    cache = tmp_path / "texts.jsonl"
    cache.write_text(json.dumps({"id": "3", "text": "cached", "error": None}) + "\n")
    texts = tool.ocr_all(["1", "2", "3"], posters, cache, jobs=2)
    assert texts["1"] == {"id": "1", "text": "NIGHT OF THE BLOOD", "error": None}  # whitespace folded
    assert texts["2"]["text"] == "" and texts["2"]["error"].startswith("tesseract exit 1: Error: cannot read")
    assert texts["3"]["text"] == "cached"  # from the cache, not read again
    assert sorted(Path(p).name for p in (fake_bin / "calls.log").read_text().split()) == ["1.jpg", "2.jpg"]
    again = tool.ocr_all(["1", "2", "3"], posters, cache, jobs=1)
    assert again == texts and len((fake_bin / "calls.log").read_text().split()) == 2


def make_run(root: Path, n: int = 120) -> None:
    """A run's data stages and embed stages as the tool reads them: two genres, one backbone in
    two views; Horror posters say "blood" on them, and their image features lean one way."""
    rng = np.random.default_rng(0)
    data = root / "data"
    for folder in ("interim", "resized", "split", "features/lite/a", "features/lite/b"):
        (data / folder).mkdir(parents=True)
    (root / "posters").mkdir()
    ids = [str(100 + i) for i in range(n)]
    horror = rng.random(n) < 0.4
    comedy = rng.random(n) < 0.5
    with open(data / "interim" / "movies.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "genres", "poster", "poster_md5"])
        for i, movie_id in enumerate(ids):
            genres = "|".join(g for g, on in (("Comedy", comedy[i]), ("Horror", horror[i])) if on)
            w.writerow([movie_id, f"t{movie_id}", genres, f"{movie_id}.jpg", "0"])
            words = "blood night scream" if horror[i] else "sunny day with friends"
            (root / "posters" / f"{movie_id}.jpg").write_text(words)
    (data / "interim" / "genres.json").write_text(json.dumps({"genres": ["Comedy", "Horror"]}))
    (data / "resized" / "manifest.csv").write_text("id\n" + "\n".join(ids) + "\n")
    for name, part in (("train", ids[:80]), ("dev", ids[80:100]), ("test", ids[100:])):
        (data / "split" / f"{name}.txt").write_text("\n".join(part) + "\n")
    for view in ("a", "b"):
        features = rng.normal(size=(n, 8)).astype(np.float32)
        features[:, 0] += 0.5 * comedy
        np.save(data / "features" / "lite" / view / "features.npy", features)
    params = {"split": {"seed": 7}, "embed": {"backbones": ["lite"], "views": ["a", "b"]}}
    (root / "params.yaml").write_text(json.dumps(params))


def test_the_pilot_reports_text_image_and_both_with_paired_intervals(tmp_path, fake_bin):
    make_run(tmp_path)
    out = tmp_path / "report.md"
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [
            sys.executable,
            str(TOOL),
            "--run",
            str(tmp_path),
            "--posters",
            str(tmp_path / "posters"),
            "--train",
            "60",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    report = out.read_text()
    assert "60 training posters" in report and "20 dev and the 20 test posters" in report
    assert "100% of them gave a word of 3 or more letters, 0 failed" in report
    rows = {line.split(" | ")[0][2:]: line for line in report.splitlines() if line.startswith("| ")}
    assert set(rows) >= {"label frequency", "text", "image", "image + text", "text against label frequency"}
    # the text names Horror outright: its test ROC-AUC is far above chance
    text_test_auc = float(rows["text"].split(" | ")[4].split()[0])
    assert text_test_auc > 0.7
    assert rows["label frequency"].split(" | ")[2].startswith("0.5000")
    # the 80 training posters that were not sampled were never read
    assert len((fake_bin / "calls.log").read_text().split()) == 100
    assert report.rstrip().endswith("0).")


def test_without_tesseract_the_pilot_says_what_to_install(tmp_path):
    make_run(tmp_path)
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # python, no tesseract
    done = subprocess.run(
        [sys.executable, str(TOOL), "--run", str(tmp_path), "--posters", str(tmp_path / "posters")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 1 and "apt-get install tesseract-ocr" in done.stderr

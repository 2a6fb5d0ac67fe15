"""tools/gpu_run.py: the GPU run's pack -> run -> report, at toy size on the CPU, on the shared
pipeline run's data (the real run is the movielens experiment on a lent GPU)."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import numpy as np

from postergenre.core import dataset

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("gpu_run", ROOT / "tools" / "gpu_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pack_run_report_keeps_the_experiments_split(project, tmp_path, monkeypatch):
    gpu_run = _tool()
    posters = project / "data/raw/synthetic/posters"
    # chunks small enough that the posters need two, and the last leaves room for a wheel
    folders = gpu_run.pack(project, posters, tmp_path, limit=60, chunk_bytes=60_000, first_chunk_spare=20_000)
    assert len(folders) >= 2
    names = [m.name for f in folders for m in tarfile.open(f / "part.tar").getmembers()]
    assert len(names) == len(set(names)) == 60 + len(gpu_run.META)  # each poster once
    with tarfile.open(folders[-2] / "part.tar") as tar:
        member = next(m for m in tar.getmembers() if m.name.startswith("posters/"))
        # the original bytes, not re-encoded
        assert tar.extractfile(member).read() == (posters / Path(member.name).name).read_bytes()

    cwd = Path.cwd()
    result = gpu_run.run(
        ROOT, tmp_path, tmp_path / "work", tmp_path / "out", ["resnet34"], epochs=1, size="32x48"
    )
    assert Path.cwd() == cwd
    saved = json.loads((tmp_path / "out/gpu_run.json").read_text())
    assert saved["posters"] == 60 and saved["size"] == "32x48"
    r = saved["methods"]["resnet34"]
    kept = set(dataset.read_manifest(project / "data/resized")[:60])
    test_ids = [i for i in (project / "data/split/test.txt").read_text().split() if i in kept]
    assert r["details"]["n_test"] == len(test_ids)  # the experiment's split, cut to the 60
    assert r["settings"]["epochs"] == 1 and r["settings"]["weights"] == "none"
    assert 0 <= r["details"]["test"]["scores"]["mAP"] <= 1
    assert r["train_posters_per_s"] > 0 and r["score_posters_per_s"] > 0
    # the resized array there is the pipeline's resize of the same posters
    X = np.load(tmp_path / "work/data/resized/32x48.npy")
    assert X.shape == (60, 48, 32, 3)
    text = gpu_run.report(result)
    assert "| resnet34 | test | " in text
    assert f"{r['details']['test']['scores']['mAP']:.4f}" in text

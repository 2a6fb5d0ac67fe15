"""Benchmark: `postergenre predict` on a folder of real posters (decode, resize, backbone, head),
in posters/s, and how far its scores are from what `evaluate` computes for the same posters
(from the embed stage's cached features). Run it in a repository whose last run used real
posters (e.g. `data.source=movielens`).

    python bench/predict.py [--model models/head] [--n 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from postergenre.apps.predict import predict_posters
from postergenre.core import dataset, paths
from postergenre.data.sources import posters_root
from postergenre.methods import load_model, spec
from postergenre.methods.params import load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/head")
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    params = load()
    poster_of = dataset.read_poster_paths(posters_root(params["data"]))
    ids = dataset.read_manifest()[: args.n]
    model = load_model(args.model)
    genres = model.genres
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for movie_id in ids:  # a folder of real posters, as a user would point predict at
            (folder / f"{movie_id}.jpg").symlink_to(poster_of[movie_id].resolve())
        start = time.perf_counter()
        result = predict_posters(args.model, [folder])
        seconds = time.perf_counter() - start
    print(
        f"predict: {len(result['predictions'])} posters in {seconds:.1f} s -> "
        f"{len(result['predictions']) / seconds:.1f} posters/s ({model.method}, "
        f"{len(result['errors'])} errors)"
    )
    got = {Path(p["poster"]).stem: [p["scores"][g] for g in genres] for p in result["predictions"]}
    # What evaluate does: the model on the embed stage's features (or posters) of the same rows.
    if spec(model.method).input == "features" and model.cached_features_mismatch() is None:
        rows = model.pool(
            {
                (b, v): np.load(paths.features_dir(b, v) / "features.npy", mmap_mode="r")[: len(ids)]
                for b in model.backbone_names
                for v in model.views
            }
        )
    else:
        posters = np.load(paths.resized() / f"{model.size}.npy", mmap_mode="r")[: len(ids)]
        rows = model.inputs_from_posters(np.array(posters))
    expected = model.predict_proba(np.array(rows))  # a writable copy
    diff = np.abs(np.array([got[i] for i in ids]) - expected).max()
    print(f"largest |predict - evaluate| score difference over {len(ids)} posters: {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

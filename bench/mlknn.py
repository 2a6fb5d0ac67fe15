"""Benchmark: our vectorised ML-kNN against scikit-multilearn-ng's MLkNN, in one run.

k=40 at 100x150 on all real training posters (45,000 values a poster): fit + predict time and
peak memory. Then, on the first --reference-train training posters, ours and
scikit-multilearn-ng's (its pure-Python loops make the full set take very long), each given the
same posters (theirs as float64 values in [0, 1]), timed in the same run: the ratio, how many
test posters' neighbour sets differ, and the largest score difference. Needs the resized arrays
and split of a movielens run:

    dvc exp run -S data.source=movielens -S data.path=../shared/data/movielens-posters
    python bench/mlknn.py [--k 40] [--size 100x150] [--reference-train 2000]

`--synthetic N` needs no data: ML-kNN fitted on N random posters at --size, its time and peak
memory beside the posters' own bytes (the search holds two blocks of rows, whatever N).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from postergenre.core import dataset
from postergenre.methods.knn.neighbours import neighbours
from postergenre.methods.mlknn import MLkNN


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def unit(X: np.ndarray) -> np.ndarray:
    """Posters as scikit-multilearn-ng is given them: float64 pixel values in [0, 1]."""
    return X.reshape(len(X), -1) / 255.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--size", default="100x150")
    parser.add_argument("--reference-train", type=int, default=2000)
    parser.add_argument("--synthetic", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.synthetic:
        return synthetic(args.synthetic, args.size, args.k)
    try:
        genres = dataset.read_genres()
        train = dataset.load_split("train", args.size, genres)
        test = dataset.load_split("test", args.size, genres)
    except (FileNotFoundError, ValueError) as exc:
        print(f"no resized data ({exc}); run the pipeline first (see the docstring)", file=sys.stderr)
        return 2
    n_features = int(np.prod(train.X.shape[1:]))
    print(
        f"train {len(train.ids)} x {n_features} features, test {len(test.ids)}, "
        f"{len(genres)} genres, k={args.k}, size {args.size}"
    )

    t0 = time.perf_counter()
    ours = MLkNN(genres, args.size, k=args.k).fit(train.X, train.Y)
    proba = ours.predict_proba(test.X)
    t_full = time.perf_counter() - t0
    print(
        f"ours, all {len(train.ids)} training posters: fit+predict {t_full:6.1f} s, "
        f"peak memory {peak_rss_gb():.2f} GB"
    )

    from skmultilearn.adapt import MLkNN as Reference

    m = min(args.reference_train, len(train.ids))
    Xs, Ys = train.X[:m], train.Y[:m]
    t0 = time.perf_counter()
    sub = MLkNN(genres, args.size, k=args.k).fit(Xs, Ys)
    sub_proba = sub.predict_proba(test.X)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = Reference(k=args.k).fit(unit(Xs), Ys)
    ref_proba = ref.predict_proba(unit(test.X)).toarray()
    t_ref = time.perf_counter() - t0
    theirs = ref.knn_.kneighbors(unit(test.X), args.k, return_distance=False)
    mine = neighbours(Xs, test.X, args.k)
    differ = sum(set(a) != set(b) for a, b in zip(mine, theirs, strict=True))
    gap = np.abs(sub_proba - ref_proba).max()
    print(
        f"on the first {m} training posters: ours {t_ours:6.1f} s, scikit-multilearn-ng "
        f"{t_ref:6.1f} s -> {t_ref / t_ours:.1f}x; test posters whose neighbour sets differ: "
        f"{differ} of {len(test.ids)}; largest score difference {gap:.2e}"
    )
    print(f"(full-set scores: mean {proba.mean():.4f})")
    return 0


def synthetic(n: int, size: str, k: int) -> int:
    from postergenre.core.sizes import parse_size

    w, h = parse_size(size)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    Y = (rng.random((n, 20)) < 0.15).astype(np.uint8)
    print(
        f"{n} random posters at {size} ({X.nbytes / 1e9:.2f} GB as uint8), k={k}; "
        f"peak memory before fitting {peak_rss_gb():.2f} GB"
    )
    t0 = time.perf_counter()
    MLkNN([f"g{j}" for j in range(20)], size, k=k).fit(X, Y)
    print(
        f"fit (every poster's neighbours among all): {time.perf_counter() - t0:.1f} s, "
        f"peak memory {peak_rss_gb():.2f} GB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

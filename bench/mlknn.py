"""Benchmark: our vectorised ML-kNN against scikit-multilearn-ng's MLkNN, in one run.

The bar: k=40 at 100x150 on all real training posters (about 7,700 x 45,000 features),
fit + predict within 60 s and 4 GB peak memory on this 2-core machine. Needs the resized arrays
and split of a movielens run:

    dvc exp run -S data.source=movielens -S data.path=../shared/data/movielens-posters
    python bench/mlknn.py [--k 40] [--size 100x150] [--reference-train 2000]

scikit-multilearn-ng is timed on the first --reference-train training posters (its pure-Python
loops make the full set take very long); ours is timed on that same subset and on all of them,
so the printed ratio compares like with like.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from postergenre.core import dataset
from postergenre.methods.knn.neighbours import flatten
from postergenre.methods.mlknn import MLkNN


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--size", default="100x150")
    parser.add_argument("--reference-train", type=int, default=2000)
    args = parser.parse_args()
    try:
        genres = dataset.read_genres()
        train = dataset.load_split("train", args.size, genres)
        test = dataset.load_split("test", args.size, genres)
    except (FileNotFoundError, ValueError) as exc:
        print(f"no resized data ({exc}); run the pipeline first (see the docstring)", file=sys.stderr)
        return 2
    n_features = int(np.prod(train.X.shape[1:]))
    print(f"train {len(train.ids)} x {n_features} features, test {len(test.ids)}, "
          f"{len(genres)} genres, k={args.k}, size {args.size}")

    t0 = time.perf_counter()
    ours = MLkNN(genres, args.size, k=args.k).fit(train.X, train.Y)
    proba = ours.predict_proba(test.X)
    t_full = time.perf_counter() - t0
    print(f"ours, all {len(train.ids)} training posters: fit+predict {t_full:6.1f} s, "
          f"peak memory {peak_rss_gb():.2f} GB   (bar: <= 60 s, <= 4 GB)")

    from skmultilearn.adapt import MLkNN as Reference

    m = min(args.reference_train, len(train.ids))
    Xs, Ys = train.X[:m], train.Y[:m]
    t0 = time.perf_counter()
    sub = MLkNN(genres, args.size, k=args.k).fit(Xs, Ys)
    sub_proba = sub.predict_proba(test.X)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = Reference(k=args.k).fit(flatten(Xs), Ys)
    ref_proba = ref.predict_proba(flatten(test.X)).toarray()
    t_ref = time.perf_counter() - t0
    same = np.abs(sub_proba - ref_proba).max()
    print(f"on the first {m} training posters: ours {t_ours:6.1f} s, scikit-multilearn-ng "
          f"{t_ref:6.1f} s -> {t_ref / t_ours:.1f}x; largest score difference {same:.2e}")
    print(f"(full-set scores: mean {proba.mean():.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the bootstrap of one method's four metrics, vectorised against a loop, in one run.

Reference: each resample's posters gathered and scored by `core.metrics` (ranking_metrics and
f1_metrics), one resample at a time. Ours: `core.bootstrap.replicates`, every resample as a row
of counts over the one set of posters. Both on the same resamples; the largest difference
between them is printed beside the ratio (the metrics files round to 6 places).

    python bench/bootstrap.py [--posters N] [--genres G] [--resamples B] [--loop L]

The reference runs on the first L resamples and is scaled to B (it is linear in them).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from postergenre.core import bootstrap
from postergenre.core.metrics import f1_metrics, ranking_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posters", type=int, default=1175, help="test posters (the grown movielens split)")
    parser.add_argument("--genres", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=bootstrap.RESAMPLES)
    parser.add_argument("--loop", type=int, default=50, help="resamples the reference scores")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    Y = rng.random((args.posters, args.genres)) < 0.12
    P = np.clip(0.3 * Y + rng.random(Y.shape), 0, 1).astype(np.float32)
    D = P > 0.6
    W = bootstrap.resample_counts(args.posters, seed=1, resamples=args.resamples)

    started = time.perf_counter()
    ours = bootstrap.replicates(Y, P, D, W)
    ours_s = time.perf_counter() - started

    started = time.perf_counter()
    worst = 0.0
    for b in range(args.loop):
        drawn = np.repeat(np.arange(args.posters), W[b].astype(int))
        ranking = ranking_metrics(Y[drawn].astype(int), P[drawn])
        f1 = f1_metrics(Y[drawn].astype(int), D[drawn].astype(int))
        for key, value in [*((k, ranking[k]) for k in ("mAP", "macro_roc_auc")), *f1.items()]:
            if key in ours:
                worst = max(worst, abs(ours[key][b] - value))
    loop_s = (time.perf_counter() - started) * args.resamples / args.loop

    print(
        f"bootstrap, {args.resamples} resamples of {args.posters} posters x {args.genres} genres: "
        f"vectorised {ours_s:.2f} s, loop {loop_s:.1f} s (scaled from {args.loop}), "
        f"{loop_s / ours_s:.1f}x; largest difference {worst:.1e}"
    )


if __name__ == "__main__":
    main()

"""Benchmark: the embed stage's posters/s for every backbone and view, on real posters, each as a
ratio against Lite0 on the squashed poster (the pipeline's default) measured in the same run.

    python bench/views.py [--posters DIR (../shared/data/movielens-posters/posters)]
                          [--n 128] [--size 260x390] [--batch 4] [--repeats 3]

The posters are decoded and resized once to --size (the movielens experiment's embed.size), as
the resize stage does; each backbone sees each view at its own side (bb.view_input).

Then where each pair's time goes: preparing the view (the batch copied and scaled, resampled,
cropped or flipped: what one pass per backbone could share) against the network's forward pass
(what it could not), per poster, and the share of the first over all pairs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from postergenre.core import backbone as bb
from postergenre.core.images import load_rgb, resize_variants
from postergenre.core.sizes import parse_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posters", type=Path, default=Path("../shared/data/movielens-posters/posters"))
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--size", default="260x390")
    parser.add_argument("--batch", type=int, default=4)  # embed.batch_size in params.yaml
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)  # embed.threads
    paths = sorted(args.posters.glob("*.jpg"))[: args.n]
    if not paths:
        raise SystemExit(f"no posters in {args.posters}")
    X = np.stack([resize_variants(load_rgb(p, 50_000_000), [parse_size(args.size)])[0] for p in paths])
    nets = {name: bb.fused(bb.load_backbone(name)) for name in bb.LITES}
    print(
        f"{len(X)} real posters at {args.size}, {torch.get_num_threads()} threads, batches of "
        f"{args.batch}; median of {args.repeats} interleaved repeats (this machine is shared)"
    )

    def rate(name: str, view: str) -> float:
        start = time.perf_counter()
        bb.embed(nets[name], X, args.batch, view=view, side=bb.resolution(name))
        return len(X) / (time.perf_counter() - start)

    for name in bb.LITES:  # warm-up
        bb.embed(nets[name], X[: args.batch], args.batch, side=bb.resolution(name))
    ref = "efficientnet_lite0", "squash"
    rows = []
    for name in bb.LITES:
        for view in bb.VIEWS:
            ratios, rates = [], []
            for _ in range(args.repeats):
                ref_rate = rate(*ref)  # the reference, in the same run, beside each measurement
                rates.append(rate(name, view))
                ratios.append(rates[-1] / ref_rate)
            rows.append((name, view, float(np.median(rates)), float(np.median(ratios))))
            print(
                f"  {name:18s} {view:7s} {rows[-1][2]:6.1f} posters/s  {rows[-1][3]:.2f}x Lite0 squash",
                flush=True,
            )
    total = sum(len(X) / r for _, _, r, _ in rows)
    print(
        f"all {len(rows)} backbone x view pairs: {total / len(X) * 1000:.0f} ms a poster "
        f"({len(X) / total:.1f} posters/s through every pair)"
    )
    shared = alone = 0.0
    for name in bb.LITES:
        side = bb.resolution(name)
        for view in bb.VIEWS:
            prepare = forward = 0.0
            with torch.inference_mode():
                for start in range(0, len(X), args.batch):
                    t0 = time.perf_counter()
                    x = bb.view_input(bb.to_input(X[start : start + args.batch]), view, side)
                    t1 = time.perf_counter()
                    nets[name].features(x)
                    prepare, forward = prepare + t1 - t0, forward + time.perf_counter() - t1
            shared, alone = shared + prepare, alone + forward
            print(
                f"  {name:18s} {view:7s} preparing the view {1000 * prepare / len(X):5.2f} ms, "
                f"the forward pass {1000 * forward / len(X):6.2f} ms a poster",
                flush=True,
            )
    print(
        f"preparing the views: {100 * shared / (shared + alone):.1f}% of all pairs' time "
        f"({1000 * shared / len(X):.1f} of {1000 * (shared + alone) / len(X):.0f} ms a poster)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the embed stage's way of running EfficientNet-Lite0 (batch norm folded, batches,
channels-last) against the same backbone run one poster at a time in plain NCHW, on real posters,
in the same run; also checks both give the same features.

    python bench/embed.py [--posters DIR (../shared/data/movielens-posters/posters)]
                          [--n 128] [--batch 4] [--repeats 5] [--threads 2] [--compile]

`--compile` times instead the stage's loop with the folded network compiled by `torch.compile`
(inductor's C++ kernels) against the same loop eager, at the same thread count: the ratio, the
compilation's own time (once per input shape) and the largest feature difference.
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


def load_posters(folder: Path, n: int) -> np.ndarray:
    """The first n posters of the folder, decoded and squashed to 224x224 as the resize stage does."""
    paths = sorted(folder.glob("*.jpg"))[:n]
    if not paths:
        raise SystemExit(f"no posters in {folder}")
    return np.stack([resize_variants(load_rgb(p, 50_000_000), [(224, 224)])[0] for p in paths])


@torch.inference_mode()
def one_at_a_time(net: bb.EfficientNetLite, X: np.ndarray) -> np.ndarray:
    net = net.to(memory_format=torch.contiguous_format)
    return np.concatenate(
        [net.features(bb.to_input(X[i : i + 1]).contiguous()).numpy() for i in range(len(X))]
    )


def timed(fn, *args) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def compiled_against_eager(X: np.ndarray, batch: int, repeats: int) -> int:
    """The stage's own loop (bb.embed) on the folded network, eager and with its forward compiled."""
    X = X[: len(X) // batch * batch]  # whole batches: one input shape, one compilation
    net = bb.load_backbone()
    eager, compiled = bb.fused(net), bb.fused(net)  # two copies of the same folded weights
    compiled.features = torch.compile(compiled.features)  # type: ignore[method-assign]
    compile_s, _ = timed(bb.embed, compiled, X[:batch], batch)
    bb.embed(eager, X[:batch], batch)  # warm-up
    print(
        f"{len(X)} real posters at 224x224, {torch.get_num_threads()} threads, batches of {batch}; "
        f"compiling took {compile_s:.1f} s"
    )
    ratios = []
    for r in range(repeats):
        eager_s, ref = timed(bb.embed, eager, X, batch)
        comp_s, got = timed(bb.embed, compiled, X, batch)
        ratios.append(eager_s / comp_s)
        print(
            f"  repeat {r + 1}: eager {len(X) / eager_s:5.1f} posters/s, compiled "
            f"{len(X) / comp_s:5.1f} posters/s -> {ratios[-1]:.2f}x"
        )
    print(f"median {np.median(ratios):.2f}x; largest feature difference {np.abs(got - ref).max():.2e}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posters", type=Path, default=Path("../shared/data/movielens-posters/posters"))
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)  # embed.batch_size in params.yaml
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)  # embed.threads in params.yaml
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X = load_posters(args.posters, args.n)
    if args.compile:
        return compiled_against_eager(X, args.batch, args.repeats)
    fast = bb.fused(bb.load_backbone())
    plain = bb.load_backbone()
    bb.embed(fast, X[: args.batch], args.batch)  # warm-up
    one_at_a_time(plain, X[:4])
    print(
        f"{len(X)} real posters at 224x224, {torch.get_num_threads()} threads; "
        f"{args.repeats} interleaved repeats (this machine is shared: read the median)"
    )
    ratios = []
    for r in range(args.repeats):
        ref_s, ref = timed(one_at_a_time, plain, X)
        fast_s, got = timed(bb.embed, fast, X, args.batch)
        ratios.append(ref_s / fast_s)
        print(
            f"  repeat {r + 1}: one poster at a time (NCHW, batch norm separate) "
            f"{len(X) / ref_s:5.1f} posters/s; embed stage (folded BN, channels-last, batches of "
            f"{args.batch}) {len(X) / fast_s:5.1f} posters/s -> {ratios[-1]:.2f}x"
        )
    print(
        f"median {np.median(ratios):.2f}x; largest feature difference {np.abs(got - ref).max():.2e} "
        f"(features range {np.abs(ref).max():.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

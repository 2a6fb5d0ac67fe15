"""Benchmark: training throughput of the shared loop (custom CNN, ResNet34) on this machine's
device, against the same loop on the CPU in the same run (on a smaller batch count).

    python bench/networks.py [--size 224x224] [--n 512] [--cpu-n 64]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from postergenre.methods.custom import CustomCNNEstimator
from postergenre.methods.nets.training import torch_device as device
from postergenre.methods.resnet34 import ResNet34Estimator


def throughput(cls, size: str, n: int, batch: int, force_cpu: bool) -> float:
    w, h = (int(v) for v in size.split("x"))
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    Y = (rng.random((n, 20)) < 0.1).astype(np.uint8)
    genres = [f"g{i}" for i in range(20)]
    model = cls(genres, size, seed=0, epochs=1, batch_size=batch)
    if force_cpu:
        available = torch.cuda.is_available
        torch.cuda.is_available = lambda: False
    try:
        model.fit(X[:batch], Y[:batch])  # warm-up: allocations, cuDNN autotuning
        start = time.perf_counter()
        model.fit(X, Y)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return n / (time.perf_counter() - start)
    finally:
        if force_cpu:
            torch.cuda.is_available = available


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="224x224")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--cpu-n", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    print(f"device: {device()} {torch.cuda.get_device_name() if torch.cuda.is_available() else ''}")
    for cls in (CustomCNNEstimator, ResNet34Estimator):
        fast = throughput(cls, args.size, args.n, args.batch, force_cpu=False)
        cpu = throughput(cls, args.size, args.cpu_n, min(args.batch, args.cpu_n), force_cpu=True)
        print(
            f"{cls.method:9s} {args.size}: {fast:8.1f} posters/s on {device()}, "
            f"{cpu:6.1f} on the CPU -> {fast / cpu:.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the resize stage against a naive reference, on the real posters, in one run.

Reference: one process, a separate open-decode-resize pass per size (what a first script does).
Ours: `postergenre.core.images.resize_posters`, each poster decoded once, all sizes, every core,
antialiased bilinear through torch's uint8 kernel (within one grey level of Pillow's BILINEAR).
Bar: at least 3x the reference and at least 1,000 posters/s on 2 cores.

The limit: every poster decoded once, with the stage's draft mode, and nothing else (one
process). The stage's rate is shown as a share of that rate times the cores it uses.

    python bench/resize.py [--posters DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from postergenre.core.images import draft_size, resize_posters
from postergenre.core.sizes import parse_size

REPO = Path(__file__).resolve().parents[1]
DEFAULT = (
    Path(os.environ.get("POSTERGENRE_SHARED_DATA", REPO.parent / "shared" / "data"))
    / "movielens-posters"
    / "posters"
)
SIZES = ["64x64", "100x150", "224x224"]


def naive(paths: list[Path], sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    arrays = []
    for w, h in sizes:
        out = np.empty((len(paths), h, w, 3), dtype=np.uint8)
        for i, path in enumerate(paths):
            with Image.open(path) as image:
                out[i] = np.asarray(image.convert("RGB").resize((w, h), Image.BILINEAR))
        arrays.append(out)
    return arrays


def decode_only(paths: list[Path], draft: tuple[int, int]) -> None:
    """What no resize can beat: open and decode each poster once at the stage's draft scale."""
    for path in paths:
        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", draft)
            image.load()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posters", type=Path, default=DEFAULT)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N posters")
    args = parser.parse_args()
    if not args.posters.is_dir():
        print(f"no posters at {args.posters}; pass --posters DIR", file=sys.stderr)
        return 2
    paths = sorted(args.posters.iterdir())
    if args.limit:
        paths = paths[: args.limit]
    n = len(paths)
    sizes = [parse_size(s) for s in SIZES]
    # Warm the page cache so both sides read from memory, not disk; import torch up front, as
    # its import (seconds, once per process) is start-up, not throughput.
    for p in paths:
        p.read_bytes()
    t0 = time.perf_counter()
    import torch  # noqa: F401

    t_import = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref = naive(paths, sizes)
    t_ref = time.perf_counter() - t0

    t0 = time.perf_counter()
    decode_only(paths, draft_size(sizes))
    t_decode = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        report = resize_posters(
            [p.stem for p in paths], paths, SIZES, Path(tmp) / "out", workers=0, progress=False
        )
        t_ours = time.perf_counter() - t0
        ours = [np.load(Path(tmp) / "out" / f"{s}.npy") for s in SIZES]
    diff = max(int(np.abs(a.astype(np.int16) - b).max()) for a, b in zip(ref, ours, strict=True))
    ok = report["posters_ok"] == n and diff <= 1

    print(f"posters: {n} ({args.posters}), sizes: {', '.join(SIZES)}, cores: {os.cpu_count()}")
    print(f"reference (1 process, one decode per size): {t_ref:7.2f} s  {n / t_ref:8.0f} posters/s")
    print(f"resize stage (decode once, all cores):       {t_ours:7.2f} s  {n / t_ours:8.0f} posters/s")
    cores = os.cpu_count() or 1
    limit = cores * n / t_decode
    print(
        f"decode only (1 process, the stage's draft):  {t_decode:7.2f} s  {n / t_decode:8.0f} posters/s"
        f" -> x {cores} cores = {limit:.0f} posters/s"
    )
    print(f"resize stage at {n / t_ours / limit:.0%} of decode-only x {cores} cores")
    print(f"(torch import before the timed part, once per process: {t_import:.2f} s)")
    print(f"speed-up: {t_ref / t_ours:.2f}x   (bar: >= 3x and >= 1000 posters/s)")
    print(f"largest pixel difference from the reference: {diff} grey level(s) (allowed: 1)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""embed: every resized poster through one pretrained backbone in one view -> a cached array.

One stage per backbone and view (a DVC matrix over `embed.backbones` x `embed.views`), so adding
a backbone or a view computes only that one. `data/features/<backbone>/<view>/features.npy` is
float32 [n_posters, 1280] in the row order of `data/resized/manifest.csv`; `embed.json` beside it
says which weights made it (their sha256), from which poster size, in which view at which side.
How fast it ran goes to the log alone (`bench/embed.py` measures speed against a reference), so a
re-run gives byte-identical files, tracked or cached, and re-runs nothing downstream. Heads on
these features train in seconds.

Under `torchrun --nproc_per_node=N` (docs/methods.md) the posters' batches are dealt out to the N
processes in turn (each on its own GPU where there are GPUs), and rank 0 gathers them and writes
the folder whole: every batch holds the posters it holds in one process, so with the same
threads per process the features are the same bytes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from postergenre.core import paths
from postergenre.core.atomic import atomic_path, write_json
from postergenre.core.device import distributed, embed_batch
from postergenre.runtime import entry

log = logging.getLogger(__name__)
INFO = "embed.json"
ARRAY = "features.npy"


def embed_posters(
    resized: str | Path,
    out_dir: str | Path,
    backbone: str,
    view: str,
    size: str,
    batch_size: int,
    threads: int = 0,
) -> dict[str, Any]:
    """Write the features folder of one backbone and view whole (array + embed.json) or not at
    all, and log how long it took (in no file: a rerun changes nothing); return embed.json's
    content."""
    import torch

    from postergenre.core import backbone as bb

    array_path = Path(resized) / f"{size}.npy"
    if not array_path.is_file():
        raise FileNotFoundError(f"{array_path}: no posters at size {size}; add it to resize.sizes")
    if batch_size < 1:
        raise ValueError(f"embed.batch_size must be at least 1, got {batch_size}")
    if view not in bb.VIEWS:
        raise ValueError(f"unknown view {view!r}; known: {', '.join(bb.VIEWS)}")
    if threads:  # a fixed count: how the convolutions split their sums depends on it
        torch.set_num_threads(threads)
    per_batch = embed_batch(batch_size)  # the batches `bb.embed` forms, dealt out whole
    posters = np.load(array_path, mmap_mode="r")
    weights = bb.wheel_weights_path(backbone)
    with distributed() as (rank, ranks):
        plain = bb.load_backbone(backbone, weights)
        temple, flower = bb.check_imagenet(plain)
        net = bb.fused(plain)
        side = bb.resolution(backbone)
        if rank == 0:
            log.info(
                "embed: %s weights check: temple -> %s %.2f, flower -> %s",
                backbone,
                temple[0][0],
                temple[0][1],
                ", ".join(name for name, _ in flower[:2]),
            )
            log.info(
                "embed: %d posters at %s, view %s at side %d, through %s (%d process%s x %d "
                "threads, batches of %d)",
                len(posters),
                size,
                view,
                side,
                backbone,
                ranks,
                "" if ranks == 1 else "es",
                torch.get_num_threads(),
                batch_size,
            )
        start = time.perf_counter()
        if ranks == 1:
            features = bb.embed(net, posters, per_batch, progress=True, view=view, side=side)
        else:
            rows = _rows_of_rank(len(posters), per_batch, rank, ranks)
            features = _gathered(
                rows,
                bb.embed(net, posters[rows], per_batch, progress=rank == 0, view=view, side=side),
                len(posters),
                ranks,
            )
        seconds = time.perf_counter() - start
    if rank != 0:
        return {}
    if not np.isfinite(features).all():
        raise ValueError("the backbone produced non-finite features; nothing written")
    info = {
        "backbone": backbone,
        "view": view,
        "side": side,
        "weights_sha256": bb.file_sha256(weights),
        "size": size,
        "n_posters": int(len(posters)),
        "dim": int(features.shape[1]),
        "batch_size": batch_size,
    }
    per_s = len(posters) / seconds if seconds > 0 else 0.0
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        np.save(tmp / ARRAY, features)
        write_json(tmp / INFO, info)
    log.info(
        "embed: %d x %d features (%s, %s) in %.1f s (%.1f posters/s, %d threads)",
        len(features),
        features.shape[1],
        backbone,
        view,
        seconds,
        per_s,
        torch.get_num_threads(),
    )
    return info


def _rows_of_rank(n: int, batch_size: int, rank: int, size: int) -> np.ndarray:
    """The posters of every size-th batch from the rank-th: whole batches, as one process
    forms them, so that each is computed as it is there."""
    starts = range(rank * batch_size, n, size * batch_size)
    return np.concatenate(
        [np.arange(s, min(s + batch_size, n)) for s in starts] or [np.zeros(0, dtype=np.int64)]
    )


def _gathered(rows: np.ndarray, features: np.ndarray, n: int, size: int) -> np.ndarray | None:
    """Every rank's (rows, features) at rank 0, in poster order; None elsewhere."""
    import torch.distributed as dist

    parts = [None] * size if dist.get_rank() == 0 else None
    dist.gather_object((rows, features), parts, dst=0)
    if parts is None:
        return None
    out = np.empty((n, features.shape[1]), dtype=np.float32)
    for part_rows, part in parts:
        out[part_rows] = part
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", required=True, help="one of embed.backbones")
    parser.add_argument("--view", required=True, help="one of embed.views")
    parser.add_argument("--resized", default=str(paths.resized()), help="the resize stage's folder")
    parser.add_argument("--out", default=None, help="features folder (default data/features/BACKBONE/VIEW)")
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    embed = params["embed"]
    for name, value, known in (
        ("backbone", args.backbone, embed["backbones"]),
        ("view", args.view, embed["views"]),
    ):
        if value not in known:
            raise ValueError(f"--{name} {value!r} is not in embed.{name}s {known}")
    out = args.out or paths.features_dir(args.backbone, args.view)
    embed_posters(
        args.resized,
        out,
        args.backbone,
        args.view,
        embed["size"],
        embed["batch_size"],
        threads=embed["threads"],
    )


if __name__ == "__main__":
    sys.exit(entry.main("embed", __doc__, add_arguments, run))

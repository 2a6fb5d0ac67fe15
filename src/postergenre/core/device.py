"""Where torch work runs: this process's GPU when there is one, else the CPU.

One place for every torch step (training, scoring, the embed stage, `predict`): under torchrun
each process takes its own GPU (LOCAL_RANK) and joins the process group (`distributed`); on CUDA
the networks run under bfloat16 autocast.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from postergenre.core.lazy import lazy_module

if TYPE_CHECKING:  # what a type checker reads; at run time each is imported on first use
    import torch
else:
    torch = lazy_module("torch")  # (core/lazy.py)

# Posters a batch through the backbone on a GPU (on the CPU, `embed.batch_size` decides: small
# batches were fastest on 2 cores; a GPU wants hundreds).
GPU_EMBED_BATCH = 256


def embed_batch(batch_size: int) -> int:
    """Posters a batch through a backbone here: `batch_size` on the CPU, at least GPU_EMBED_BATCH
    on a GPU (the embed stage deals these batches out under torchrun)."""
    return max(batch_size, GPU_EMBED_BATCH) if torch_device().type == "cuda" else batch_size


def torch_device() -> torch.device:
    """This process's device: its GPU under torchrun (LOCAL_RANK), the first GPU, or the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def world() -> tuple[int, int]:
    """(rank, world size) as torchrun sets them; (0, 1) in a plain process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


@contextlib.contextmanager
def distributed() -> Iterator[tuple[int, int]]:
    """Join torchrun's process group for the duration (gloo on the CPU, NCCL on GPUs), and end it
    if this call started it."""
    rank, size = world()
    started = False
    if size > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            device = torch_device()
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            started = True
    try:
        yield rank, size
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()

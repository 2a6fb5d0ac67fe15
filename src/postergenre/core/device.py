"""Where torch work runs: this process's GPU when there is one, else the CPU.

One place for every torch step (training, scoring, the embed stage, `predict`): under torchrun
each process takes its own GPU (LOCAL_RANK); on CUDA the networks run under bfloat16 autocast.
"""

from __future__ import annotations

import contextlib
import os

from postergenre.core.lazy import lazy_module

torch = lazy_module("torch")  # imported on first use (core/lazy.py)

# Posters a batch through the backbone on a GPU (on the CPU, `embed.batch_size` decides: small
# batches were fastest on 2 cores; a GPU wants hundreds).
GPU_EMBED_BATCH = 256


def torch_device() -> torch.device:
    """This process's device: its GPU under torchrun (LOCAL_RANK), the first GPU, or the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()

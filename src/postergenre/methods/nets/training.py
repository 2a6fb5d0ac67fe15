"""The one training loop for every torch model (custom CNN, ResNet34, the feature head and its
fine-tuning), and the one way they score inputs.

- Device: CUDA when present (bfloat16 autocast), else the CPU.
- Seeded: each epoch's order (and dropout) comes from (seed, epoch), not from a stream, so a
  run resumed at epoch e draws what an uninterrupted run draws there.
- One rule for the epoch kept: the best dev mAP (the last epoch when there is no dev split).
- A checkpoint after every epoch (model, optimiser, best epoch so far, history); a killed run
  resumes from it when started again with the same settings and data (`fingerprint`).
- Under `torchrun` (WORLD_SIZE > 1): DistributedDataParallel over even shards of each epoch's
  order (padded like torch's DistributedSampler, so every rank runs the same number of batches
  and none waits forever), the global batch split across ranks; rank 0 alone writes checkpoints
  and logs; `core.device.distributed()` ends the process group it started.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from postergenre.core.device import autocast, torch_device, world
from postergenre.core.lazy import lazy_module
from postergenre.core.metrics import bce_loss, mean_average_precision
from postergenre.methods.base import MethodSettings
from postergenre.progress import Progress

if TYPE_CHECKING:  # what a type checker reads; at run time each is imported on first use
    import torch
    from torch import nn
else:
    torch = lazy_module("torch")  # (core/lazy.py)
    nn = lazy_module("torch.nn")

log = logging.getLogger(__name__)

# One batch of training data: (inputs, 0/1 targets) for the given example indices, on a device.
BatchFn = Callable[[np.ndarray, Any], tuple[Any, Any]]  # (indices, device) -> (inputs, labels)


# params.yaml's `training` section, the default where a model card predates it
DEFAULT_SETTINGS = {"threads": 2}


class NetsSettings(MethodSettings):
    """A method of the `nets` family, trained by this loop: it reads the top-level `training`."""

    family: Literal["nets"] = "nets"
    reads: Literal["training"] = "training"


CHUNKS = 4  # train-loss points per epoch in the training plot


@contextlib.contextmanager
def configured(settings: dict[str, Any] | None) -> Iterator[None]:
    """Torch set as params.yaml's `training` says, for the duration: a fixed number of CPU
    threads (how oneDNN and MKL split their sums depends on it, so a 2-core laptop and a
    16-core server train the same network only with the same count: measured here, ResNet34
    scores after one epoch differ by up to 0.6 between 1 and 2 threads), deterministic
    algorithms where torch has them, full-precision float32 matrix products."""
    settings = {**DEFAULT_SETTINGS, **(settings or {})}
    before = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.get_float32_matmul_precision(),
    )
    torch.set_num_threads(settings["threads"])
    deterministic(True, warn_only=True)
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        threads, algorithms, precision = before
        torch.set_num_threads(threads)
        deterministic(algorithms)
        torch.set_float32_matmul_precision(precision)


def deterministic(mode: bool, warn_only: bool = False) -> None:
    """`torch.use_deterministic_algorithms`, without its import of torch._inductor where nothing
    compiles: that import is 1.9 s of every train and evaluate process here (`python -X
    importtime`), for a setting of torch.compile alone. Where torch._inductor is loaded (a
    compiled model), the public function sets both."""
    if "torch._inductor" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


def shard(order: np.ndarray, rank: int, size: int) -> np.ndarray:
    """This rank's share of `order`: padded with its first entries to a multiple of `size` (as
    DistributedSampler does), then every size-th entry, so all ranks get the same count."""
    total = math.ceil(len(order) / size) * size
    padded = np.concatenate([order, order[: total - len(order)]]) if total > len(order) else order
    return padded[rank::size]


def fingerprint(settings: dict[str, Any], *arrays: np.ndarray) -> str:
    """What a checkpoint must match to be resumed: the settings and the training data."""
    from postergenre.core.dataset import content_sha256

    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(content_sha256(*arrays).encode())
    return h.hexdigest()


@dataclass
class LoopSettings:
    epochs: int
    batch_size: int  # the global batch: split across ranks under torchrun
    seed: int
    name: str = "train"  # for logs and the checkpoint's file name
    checkpoints: Path | None = None  # folder; None = no checkpoints
    fingerprint: str = ""
    score_initial: bool = False  # also score the weights before training (epoch 0) on dev
    sample_weights: np.ndarray | None = None  # draw examples with replacement by these weights
    record: dict[str, Any] | None = None  # added to every epoch's record
    warmup_epochs: float = 0.0  # learning rates rise linearly from ~0 over these epochs


def warmup_factor(epoch: int, step: int, steps: int, warmup_epochs: float) -> float:
    """The share of each group's learning rate at batch `step` (0-based) of `steps` in `epoch`
    (1-based): linear from 1/steps to 1 over `warmup_epochs`, then 1. A function of the position
    alone, so a resumed run sets what an uninterrupted one set."""
    if warmup_epochs <= 0:
        return 1.0
    done = epoch - 1 + (step + 1) / max(steps, 1)
    return min(1.0, done / warmup_epochs)


def quarter_losses(sums: list[float], counts: list[int]) -> list[float]:
    """The train loss of each quarter of an epoch's batches (fewer parts when there are fewer
    batches), for the training plot: an epoch or two still draws a curve. Rank 0's batches
    under DDP."""
    n = len(sums)
    ends = sorted({math.ceil(n * q / CHUNKS) for q in range(1, CHUNKS + 1)} - {0})
    out, start = [], 0
    for end in ends:
        total = 0.0
        for s in sums[start:end]:
            total += s
        out.append(round(total / max(sum(counts[start:end]), 1), 6))
        start = end
    return out


def _state_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _dev_record(module: nn.Module, dev_scores, Y_dev: np.ndarray) -> dict[str, float]:
    """Dev BCE and dev mAP of the module's current weights (mAP -1 where no genre has a
    positive dev example)."""
    P = dev_scores(module)
    mAP = mean_average_precision(Y_dev, P)
    return {"dev_loss": bce_loss(Y_dev, P), "dev_mAP": -1.0 if mAP is None else mAP}


def train(
    module: nn.Module,
    optimiser: torch.optim.Optimizer,
    loss_fn,
    batch: BatchFn,
    n: int,
    settings: LoopSettings,
    dev_scores: Callable[[nn.Module], np.ndarray] | None = None,
    Y_dev: np.ndarray | None = None,
    on_epoch=None,
) -> list[dict[str, Any]]:
    """Train `module` (already on `torch_device()`) in place on examples 0..n-1; leave it holding
    the best dev epoch's weights; return one record per epoch (train loss, dev loss, dev mAP).

    `dev_scores(module)` gives sigmoid scores on the dev split, compared with `Y_dev`.
    """
    device = torch_device()
    rank, size = world()
    model: nn.Module = module
    if size > 1:
        model = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )
    has_dev = dev_scores is not None and Y_dev is not None and len(Y_dev) > 0
    ckpt = settings.checkpoints / f"{settings.name}.pt" if settings.checkpoints else None
    history: list[dict[str, Any]] = []
    best_state, best_score, first = None, -math.inf, 1
    saved = load_checkpoint(ckpt) if ckpt is not None and ckpt.is_file() else None
    if saved is not None:
        if saved.get("fingerprint") == settings.fingerprint:
            module.load_state_dict(saved["model"])
            optimiser.load_state_dict(saved["optimiser"])
            history, best_state, best_score = saved["history"], saved["best_state"], saved["best_score"]
            first = saved["epoch"] + 1
            if rank == 0:
                log.info("%s: resuming after epoch %d from %s", settings.name, saved["epoch"], ckpt)
        elif rank == 0:
            log.info("%s: %s is from other settings or data; starting afresh", settings.name, ckpt)
    extra = settings.record or {}
    if first == 1 and has_dev and Y_dev is not None and settings.score_initial:
        # The weights before training are a candidate too (epoch 0): training must beat them.
        history.append({"epoch": 0, **extra, **_dev_record(module, dev_scores, Y_dev)})
        best_score, best_state = history[0]["dev_mAP"], _state_copy(module)
    per_rank = math.ceil(settings.batch_size / size)
    for group in optimiser.param_groups:  # what a warm-up scales (kept in the checkpoint)
        group.setdefault("base_lr", group["lr"])
    for epoch in range(first, settings.epochs + 1):
        rng = np.random.default_rng([settings.seed, epoch])
        torch.manual_seed(settings.seed * 10_007 + epoch * 101 + rank)  # dropout masks
        if settings.sample_weights is not None:
            order = rng.choice(n, n, p=settings.sample_weights)
        else:
            order = rng.permutation(n)
        mine = shard(order, rank, size)
        model.train()
        n_batches = math.ceil(len(mine) / per_rank)
        sums: list[float] = []  # each batch's summed loss, and its size
        counts: list[int] = []
        bar = Progress(
            f"{settings.name} epoch {epoch}/{settings.epochs}", n_batches, "batch", enabled=rank == 0
        )
        for step, start in enumerate(range(0, len(mine), per_rank)):
            if settings.warmup_epochs > 0:
                factor = warmup_factor(epoch, step, n_batches, settings.warmup_epochs)
                for group in optimiser.param_groups:
                    group["lr"] = group["base_lr"] * factor
            x, y = batch(np.sort(mine[start : start + per_rank]), device)
            with autocast(device):
                out = model(x)
            loss = loss_fn(out.float(), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            sums.append(loss.item() * len(y))  # one device sync a batch
            counts.append(len(y))
            bar.update()
        bar.close()
        total, seen = sum(sums, 0.0), sum(counts)
        if size > 1:
            import torch.distributed as dist

            both = torch.tensor([total, seen], dtype=torch.float64, device=device)
            dist.all_reduce(both)
            total, seen = float(both[0]), int(both[1])
        record = {
            "epoch": epoch,
            "train_loss": round(total / max(seen, 1), 6),
            "train_loss_quarters": quarter_losses(sums, counts),
            **extra,
        }
        if has_dev and Y_dev is not None:
            record.update(_dev_record(module, dev_scores, Y_dev))
            if record["dev_mAP"] > best_score:
                best_score, best_state = record["dev_mAP"], _state_copy(module)
        history.append(record)
        if rank == 0:
            log.info(
                "%s epoch %d/%d: %s",
                settings.name,
                epoch,
                settings.epochs,
                ", ".join(
                    f"{k.replace('_', ' ')} {v:.4f}"
                    for k, v in record.items()
                    if k in ("train_loss", "dev_loss", "dev_mAP")
                ),
            )
            if ckpt is not None:
                _save_checkpoint(
                    ckpt,
                    {
                        "epoch": epoch,
                        "model": module.state_dict(),
                        "optimiser": optimiser.state_dict(),
                        "history": history,
                        "best_state": best_state,
                        "best_score": best_score,
                        "fingerprint": settings.fingerprint,
                    },
                )
        if on_epoch is not None and rank == 0:
            on_epoch(record)
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return history


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """A checkpoint this loop wrote: tensors and plain values only (`weights_only=True`, so a
    file planted in .checkpoints/ cannot run code when loaded). Anything else is logged with
    its reason and None returned: training starts afresh and overwrites it."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for code in the file, others for damage
        log.warning(
            "%s is not a checkpoint this code wrote (%s: %s); starting afresh",
            path,
            type(exc).__name__,
            str(exc).splitlines()[0][:200],
        )
        return None
    if not isinstance(saved, dict):
        log.warning("%s holds no checkpoint (a %s); starting afresh", path, type(saved).__name__)
        return None
    return saved


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Written whole (a temporary file, then a rename), in plain values: the history and the
    scores go through JSON, so no numpy scalar needs pickling to load it back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    state = {
        **state,
        "history": json.loads(json.dumps(state["history"])),
        "best_score": float(state["best_score"]),
    }
    torch.save(state, tmp)
    os.replace(tmp, path)  # a kill mid-write leaves the previous epoch's checkpoint intact


def best_dev_score(history: list[dict[str, Any]]) -> float:
    """The dev mAP the kept weights reached (-inf without a dev split)."""
    scores = [r["dev_mAP"] for r in history if "dev_mAP" in r]
    return max(scores) if scores else -math.inf


def scores(
    module: nn.Module, X, to_input: Callable[[Any, torch.device], torch.Tensor], batch_size: int
) -> np.ndarray:
    """Sigmoid scores [n, n_genres] (float64) of `module` on inputs X, in batches."""
    device = torch_device()
    module = module.to(device)
    was_training = module.training
    module.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            with autocast(device):
                logits = module(to_input(X[start : start + batch_size], device))
            out.append(torch.sigmoid(logits.float()).cpu().numpy().astype(np.float64))
    module.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0))

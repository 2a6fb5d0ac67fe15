"""The study's networks: its custom CNN and a ResNet34 with one logit per genre.

Both use one training loop (`train_network`): sigmoid + binary cross-entropy, Adam, CPU by
default, CUDA with bfloat16 autocast when a GPU is there, and DistributedDataParallel when
launched by `torchrun` (WORLD_SIZE > 1), so the same code scales out unchanged.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from postergenre.methods.base import Estimator

log = logging.getLogger(__name__)

# ImageNet statistics: what the pretrained ResNet34 expects, harmless for the custom CNN.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def device() -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", local)
    return torch.device("cpu")


def to_input(X: np.ndarray, dev: torch.device) -> torch.Tensor:
    """uint8 posters [n, H, W, 3] -> normalised float [n, 3, H, W], channels-last in memory."""
    x = torch.from_numpy(np.ascontiguousarray(X)).to(dev).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=dev).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def _autocast(dev: torch.device):
    if dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def train_network(net: nn.Module, X: np.ndarray, Y: np.ndarray, dev_set, epochs: int,
                  batch_size: int, lr: float, weight_decay: float, seed: int,
                  on_epoch=None) -> list[dict[str, float]]:
    """Adam on BCE-with-logits; returns per-epoch mean train loss and dev loss."""
    torch.manual_seed(seed)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    dev = device()
    net = net.to(dev).to(memory_format=torch.channels_last)
    model: nn.Module = net
    rank, world = 0, 1
    if distributed:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[dev.index] if dev.type == "cuda" else None)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    generator = np.random.default_rng(seed)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = generator.permutation(len(X))[rank::world]  # same permutation on every rank
        total, seen = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = np.sort(order[start:start + batch_size])
            x = to_input(X[idx], dev)
            y = torch.from_numpy(Y[idx].astype(np.float32)).to(dev)
            with _autocast(dev):
                loss = loss_fn(model(x).float(), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        record = {"epoch": epoch, "train_loss": round(total / max(seen, 1), 6)}
        if dev_set is not None and len(dev_set[0]):
            scores = predict_scores(net, dev_set[0], batch_size)
            record["dev_loss"] = round(float(nn.functional.binary_cross_entropy(
                torch.from_numpy(np.clip(scores, 1e-7, 1 - 1e-7)),
                torch.from_numpy(dev_set[1].astype(np.float64)))), 6)
        history.append(record)
        log.info("epoch %d/%d: %s", epoch, epochs, record)
        if on_epoch is not None:
            on_epoch(record)
    return history


@torch.no_grad()
def predict_scores(net: nn.Module, X: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Sigmoid scores [n, n_genres] in float64."""
    dev = device()
    net = net.to(dev).eval()
    out = []
    for start in range(0, len(X), batch_size):
        with _autocast(dev):
            logits = net(to_input(X[start:start + batch_size], dev))
        out.append(torch.sigmoid(logits.float()).cpu().numpy().astype(np.float64))
    net.train()
    return np.concatenate(out) if out else np.zeros((0, 0))


class CustomCNN(nn.Module):
    """The study's own CNN: convolutions with filters growing with depth, max-pooling between,
    dropout, flatten, a ReLU dense layer, one logit per genre (sigmoid in the loss)."""

    def __init__(self, n_genres: int, height: int, width: int, filters=(32, 64, 128),
                 dense: int = 256, dropout: float = 0.25):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for f in filters:
            layers += [nn.Conv2d(channels, f, 3, padding=1), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2), nn.Dropout(dropout)]
            channels = f
        self.features = nn.Sequential(*layers)
        flat = channels * (height // 2 ** len(filters)) * (width // 2 ** len(filters))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, dense), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(dense, n_genres))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


RESNET34_URL_NAME = "resnet34-b627a593.pth"  # torchvision's IMAGENET1K_V1 file


def resnet34_imagenet_state(timeout: float = 5.0) -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 ResNet34 weights: from the torch cache, else downloaded.

    Offline, this fails within `timeout` seconds naming the other options instead of hanging.
    """
    from torchvision.models import ResNet34_Weights

    url = ResNet34_Weights.IMAGENET1K_V1.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not cached.is_file():
        host = url.split("/")[2]
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
        except OSError as exc:
            raise RuntimeError(
                f"methods.resnet34.weights=imagenet needs {url} (not in the torch cache at "
                f"{cached}) and {host} cannot be reached ({exc}). Use weights: none (random "
                f"initialisation) or weights: /path/to/resnet34-state-dict.pth (a local file)."
            ) from None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)
    try:
        return ResNet34_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)
    finally:
        socket.setdefaulttimeout(previous)


def build_resnet34(n_genres: int, weights: str) -> nn.Module:
    """ResNet34 with its last layer replaced by one logit per genre.

    `weights`: 'imagenet', 'none', or a path to a state dict (torchvision's, or one saved by
    this project; a 1000-class `fc` in it is left out, as the genre layer replaces it).
    """
    from torchvision.models import resnet34

    net = resnet34(weights=None)
    if weights == "imagenet":
        net.load_state_dict(resnet34_imagenet_state())
    elif weights != "none":
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"methods.resnet34.weights: {path} is not a file "
                                    "(expected imagenet, none, or a state-dict path)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
            raise ValueError(f"{path} is not a ResNet34 state dict (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
    net.fc = nn.Linear(net.fc.in_features, n_genres)
    return net


class _NetworkEstimator(Estimator):
    """An Estimator around a torch network trained by `train_network`."""

    def __init__(self, genres: list[str], size: str, seed: int = 0, epochs: int = 5,
                 batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.0, **params):
        super().__init__(genres, size, seed, epochs=epochs, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, **params)
        self.history: list[dict[str, float]] = []
        self.net: nn.Module | None = None

    def build(self, pretrained: bool = True) -> nn.Module:
        raise NotImplementedError

    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None) -> None:
        torch.manual_seed(self.seed)  # the initial weights are part of the run
        self.net = self.build()
        p = self.params
        self.history = train_network(self.net, X, Y, dev, p["epochs"], p["batch_size"], p["lr"],
                                     p["weight_decay"], self.seed, on_epoch=on_epoch)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._check_X(X)
        if len(X) == 0:
            return np.zeros((0, len(self.genres)))
        return predict_scores(self.net, X, self.params["batch_size"])

    def _state(self) -> dict[str, Any]:
        return {"history": self.history, "mean": MEAN, "std": STD}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.history = state["history"]

    def _save_weights(self, folder: Path) -> None:
        torch.save(self.net.state_dict(), folder / "weights.pt")

    def _load_weights(self, folder: Path) -> None:
        self.net = self.build(pretrained=False)
        self.net.load_state_dict(torch.load(folder / "weights.pt", map_location="cpu",
                                            weights_only=True))
        self.net.eval()


class CustomCNNEstimator(_NetworkEstimator):
    method = "custom"

    def __init__(self, genres, size, seed=0, dropout: float = 0.25, dense: int = 256, **params):
        super().__init__(genres, size, seed, dropout=dropout, dense=dense, **params)

    def build(self, pretrained: bool = True) -> nn.Module:
        from postergenre.params import parse_size

        width, height = parse_size(self.size)
        return CustomCNN(len(self.genres), height, width, dense=self.params["dense"],
                         dropout=self.params["dropout"])


class ResNet34Estimator(_NetworkEstimator):
    method = "resnet34"

    def __init__(self, genres, size, seed=0, weights: str = "none", **params):
        super().__init__(genres, size, seed, weights=weights, **params)

    def build(self, pretrained: bool = True) -> nn.Module:
        return build_resnet34(len(self.genres), self.params["weights"] if pretrained else "none")

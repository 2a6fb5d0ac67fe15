"""What the networks on pixels share (the study's custom CNN and ResNet34, the fine-tuned
EfficientNet-Lite): posters normalised in, one logit per genre out (sigmoid + BCE, Adam),
trained by the one loop, saved as weights.pt.

Options for fine-tuning (off by default, as the study trained): `augment` (a random crop of
70-100% of each side, a horizontal flip, brightness / contrast / saturation jitter of +-20%,
drawn per poster and epoch from the loop's seed), `warmup_epochs` (learning rates rising
linearly over the first epochs) and `trunk_lr_factor` (the network below its genre layer
trains at this share of `lr`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from postergenre.core.device import distributed, torch_device
from postergenre.core.lazy import lazy_module
from postergenre.core.settings import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Share,
    Size,
)
from postergenre.methods.base import Estimator, read_saved
from postergenre.methods.nets import training

if TYPE_CHECKING:  # what a type checker reads; at run time each is imported on first use
    import torch
    from torch import nn
else:
    torch = lazy_module("torch")  # (core/lazy.py)
    nn = lazy_module("torch.nn")

# ImageNet statistics: what the pretrained ResNet34 expects, harmless for the custom CNN.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def to_unit(X: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 posters [n, H, W, 3] -> float [n, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(X)).to(device).permute(0, 3, 1, 2).float().div_(255)


def imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def to_input(X: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 posters [n, H, W, 3] -> normalised float [n, 3, H, W], channels-last in memory."""
    return imagenet_normalise(to_unit(X, device))


def augment(x: torch.Tensor, min_scale: float = 0.7, jitter: float = 0.2) -> torch.Tensor:
    """A random view of each poster of x ([n, 3, H, W] in [0, 1]), from torch's current random
    state: a crop of `min_scale`-100% of each side at a random place, resized back to H x W,
    mirrored left-right half the time, then brightness, contrast and saturation each scaled by a
    factor in 1 +- `jitter`."""
    import torch.nn.functional as F

    n, device = len(x), x.device
    scale = min_scale + (1 - min_scale) * torch.rand(n, 2, device=device)  # of width, height
    shift = (1 - scale) * (2 * torch.rand(n, 2, device=device) - 1)  # the crop stays inside
    flip = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 1, 1] = scale[:, 0] * flip, scale[:, 1]
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    factors = 1 + jitter * (2 * torch.rand(n, 3, 1, 1, 1, device=device) - 1)
    x = x * factors[:, 0]  # brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factors[:, 1] + mean  # contrast
    grey = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    x = (x - grey) * factors[:, 2] + grey  # saturation
    return x.clamp_(0, 1)


class NetworkSettings(training.NetsSettings):
    """What every network on pixels takes; each method gives the defaults."""

    size: Size
    epochs: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    weight_decay: NonNegativeFloat
    augment: bool  # random crops, flips, colour jitter per epoch
    warmup_epochs: NonNegativeInt  # the learning rate rising linearly over these first epochs
    trunk_lr_factor: Share  # the layers below the genre layer at this share of lr


class PixelNetwork(Estimator):
    """An Estimator around a torch network on posters; subclasses say how to `build` it."""

    def __init__(self, genres: list[str], size: str, seed: int = 0, **params):
        super().__init__(genres, size, seed, **params)
        self.history: list[dict[str, float]] = []
        self.net: nn.Module | None = None

    def build(self, pretrained: bool = True) -> nn.Module:
        raise NotImplementedError

    # how the network wants its input, from posters in [0, 1]
    normalise = staticmethod(imagenet_normalise)

    def to_input(self, X: np.ndarray, device: torch.device) -> torch.Tensor:
        return self.normalise(to_unit(X, device))

    def genre_layer(self, net: nn.Module) -> nn.Module:
        """The layer that gives the genre logits (the last linear layer): the "head" that
        `trunk_lr_factor` does not slow down."""
        return [m for m in net.modules() if isinstance(m, nn.Linear)][-1]

    def cam_layer(self, net: nn.Module) -> nn.Module:
        """The last convolutional block, whose output Grad-CAM weighs (`postergenre explain`):
        by default the last convolution."""
        return [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1]

    has_heatmaps = True

    def cam_activations(self, X: np.ndarray, inputs: np.ndarray):
        """The `cam_layer`'s output for the poster, and the logits computed from it."""
        net = self.net.eval()
        seen: dict[str, torch.Tensor] = {}
        handle = self.cam_layer(net).register_forward_hook(lambda _m, _i, out: seen.__setitem__("A", out))
        try:
            with torch.enable_grad():
                x = self.to_input(X, torch.device("cpu")).requires_grad_(True)
                logits = net.float()(x)
        finally:
            handle.remove()
        return seen["A"], logits, "squash"

    def optimiser(self, net: nn.Module) -> torch.optim.Optimizer:
        p = self.params
        if p["trunk_lr_factor"] == 1:
            groups = [{"params": list(net.parameters())}]
        else:
            head = {id(t) for t in self.genre_layer(net).parameters()}
            groups = [
                {
                    "params": [t for t in net.parameters() if id(t) not in head],
                    "lr": p["lr"] * p["trunk_lr_factor"],
                },
                {"params": list(self.genre_layer(net).parameters())},
            ]
        return torch.optim.Adam(groups, lr=p["lr"], weight_decay=p["weight_decay"])

    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None, checkpoints=None) -> None:
        p = self.params
        torch.manual_seed(self.seed)  # the initial weights are part of the run
        net = self.build().to(torch_device()).to(memory_format=torch.channels_last)
        Yt = torch.from_numpy(Y.astype(np.float32))

        def batch(idx: np.ndarray, device: torch.device):
            x = to_unit(X[idx], device)
            if p["augment"]:
                x = augment(x)
            return self.normalise(x), Yt[idx].to(device)

        settings = training.LoopSettings(
            epochs=p["epochs"],
            batch_size=p["batch_size"],
            seed=self.seed,
            name=self.method,
            checkpoints=checkpoints,
            warmup_epochs=p["warmup_epochs"],
            fingerprint=training.fingerprint(
                {**p, "genres": self.genres, "seed": self.seed, "size": self.size, "epochs": None}, X, Y
            ),
        )
        optimiser = self.optimiser(net)
        has_dev = dev is not None and len(dev[0])
        with distributed(), training.configured(p.get("training")):
            self.history = training.train(
                net,
                optimiser,
                nn.BCEWithLogitsLoss(),
                batch,
                len(X),
                settings,
                dev_scores=(lambda m: training.scores(m, dev[0], self.to_input, p["batch_size"]))
                if has_dev
                else None,
                Y_dev=dev[1] if has_dev else None,
                on_epoch=on_epoch,
            )
        self.net = net

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._check_X(X)
        if len(X) == 0:
            return np.zeros((0, len(self.genres)))
        with training.configured(self.params.get("training")):
            return training.scores(self.net, X, self.to_input, self.params["batch_size"])

    def _state(self) -> dict[str, Any]:
        return {"history": self.history, "mean": MEAN, "std": STD}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.history = state["history"]

    def _save_weights(self, folder: Path) -> None:
        torch.save({k: v.cpu() for k, v in self.net.state_dict().items()}, folder / "weights.pt")

    def _load_weights(self, folder: Path) -> None:
        self.net = self.build(pretrained=False)
        self.net.load_state_dict(read_saved(folder / "weights.pt"))
        self.net.eval()

"""torchvision's ResNet34 with its last layer replaced by one logit per genre (the study's
transfer-learning model), from ImageNet weights, a local state dict, or random initialisation."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from postergenre.core.lazy import lazy_module
from postergenre.core.settings import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Share,
    Size,
)
from postergenre.methods.nets.pixel_network import NetworkSettings, PixelNetwork

if TYPE_CHECKING:  # what a type checker reads; at run time each is imported on first use
    import torch
    from torch import nn
else:
    torch = lazy_module("torch")  # (core/lazy.py)
    nn = lazy_module("torch.nn")


class Settings(NetworkSettings):
    """methods.resnet34: torchvision's ResNet34, its last layer one logit per genre."""

    study: ClassVar[bool] = True
    size: Size = "64x64"  # the study: 224x224
    epochs: PositiveInt = 1  # the study: 50
    batch_size: PositiveInt = 32
    lr: PositiveFloat = 0.001
    weight_decay: NonNegativeFloat = 0.0
    augment: bool = False
    warmup_epochs: NonNegativeInt = 0
    trunk_lr_factor: Share = 1.0
    # imagenet (downloaded once into the torch cache) | none | /path/to/state_dict.pth
    weights: str = "none"


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
            raise FileNotFoundError(
                f"methods.resnet34.weights: {path} is not a file "
                "(expected imagenet, none, or a state-dict path)"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
            raise ValueError(
                f"{path} is not a ResNet34 state dict (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    net.fc = nn.Linear(net.fc.in_features, n_genres)
    return net


class ResNet34Estimator(PixelNetwork):
    method = "resnet34"
    Settings = Settings

    def build(self, pretrained: bool = True) -> nn.Module:
        return build_resnet34(len(self.genres), self.params["weights"] if pretrained else "none")

    def cam_layer(self, net: nn.Module) -> nn.Module:
        return net.layer4  # the last residual stage, 7x7 at 224x224

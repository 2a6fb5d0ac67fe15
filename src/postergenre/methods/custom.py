"""The study's own CNN: convolutions with filters growing with depth, max-pooling between,
dropout, a ReLU dense layer, one logit per genre."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, ClassVar

from postergenre.core.lazy import lazy_module
from postergenre.core.settings import (
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Share,
    Size,
)
from postergenre.methods.nets.pixel_network import NetworkSettings, PixelNetwork

if TYPE_CHECKING:  # what a type checker reads; at run time each is imported on first use
    from torch import nn
else:
    nn = lazy_module("torch.nn")  # (core/lazy.py)


class Settings(NetworkSettings):
    """methods.custom: the study's CNN (it trained 50 epochs)."""

    study: ClassVar[bool] = True
    size: Size = "64x64"
    epochs: PositiveInt = 5
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 0.001
    weight_decay: NonNegativeFloat = 0.0
    augment: bool = False
    warmup_epochs: NonNegativeInt = 0
    trunk_lr_factor: Share = 1.0
    dropout: Fraction = 0.25
    dense: PositiveInt = 256


def custom_cnn(
    n_genres: int, height: int, width: int, filters=(32, 64, 128), dense: int = 256, dropout: float = 0.25
) -> nn.Module:
    """The study's own CNN: convolutions with filters growing with depth, max-pooling between,
    dropout, flatten, a ReLU dense layer, one logit per genre (sigmoid in the loss); `features`
    then `head`, in order."""
    layers: list[nn.Module] = []
    channels = 3
    for f in filters:
        layers += [
            nn.Conv2d(channels, f, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Dropout(dropout),
        ]
        channels = f
    flat = channels * (height // 2 ** len(filters)) * (width // 2 ** len(filters))
    head = nn.Sequential(
        nn.Flatten(),
        nn.Linear(flat, dense),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(dense, n_genres),
    )
    return nn.Sequential(OrderedDict(features=nn.Sequential(*layers), head=head))


class CustomCNNEstimator(PixelNetwork):
    method = "custom"
    Settings = Settings

    def build(self, pretrained: bool = True) -> nn.Module:
        width, height = self.width_height
        return custom_cnn(
            len(self.genres), height, width, dense=self.params["dense"], dropout=self.params["dropout"]
        )

    def cam_layer(self, net: nn.Module) -> nn.Module:
        return net.features[-3]  # the last convolution's ReLU, before its pooling

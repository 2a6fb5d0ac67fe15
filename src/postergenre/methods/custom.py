"""The study's own CNN: convolutions with filters growing with depth, max-pooling between,
dropout, a ReLU dense layer, one logit per genre."""

from __future__ import annotations

import torch
from torch import nn

from postergenre.methods.pixel_network import PixelNetwork

SPEC = {
    "estimator": "CustomCNNEstimator",
    "input": "pixels",
    "reads": ["training"],
    "params": {"size": "size", "epochs": "pos_int", "batch_size": "pos_int", "lr": "pos_number",
               "weight_decay": "nonneg_number", "augment": "bool", "warmup_epochs": "nonneg_int",
               "trunk_lr_factor": {"type": "number", "min": 0, "max": 1}, "dropout": "fraction",
               "dense": "pos_int"},
}


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


class CustomCNNEstimator(PixelNetwork):
    method = "custom"

    def __init__(self, genres, size, seed=0, dropout: float = 0.25, dense: int = 256, **params):
        super().__init__(genres, size, seed, dropout=dropout, dense=dense, **params)

    def build(self, pretrained: bool = True) -> nn.Module:
        width, height = self.width_height
        return CustomCNN(len(self.genres), height, width, dense=self.params["dense"],
                         dropout=self.params["dropout"])

    def cam_layer(self, net: nn.Module) -> nn.Module:
        return net.features[-3]  # the last convolution's ReLU, before its pooling

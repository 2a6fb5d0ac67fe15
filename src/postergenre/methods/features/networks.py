"""The torch modules a head on backbone features trains: the head itself, and the backbone's
last blocks with the head on top for a fine-tune."""

from __future__ import annotations

import torch
from torch import nn

from postergenre.core.backbone import EfficientNetLite


class Head(nn.Module):
    """Standardise the features (train mean / std), then a linear layer, or one hidden ReLU layer."""

    def __init__(self, dim: int, n_genres: int, hidden: int, dropout: float):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        if hidden > 0:
            self.net = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(dim, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, n_genres),
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_genres))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net((f - self.mean) / self.std)


class Tail(nn.Module):
    """The backbone's blocks from `stop` on, its 1x1 head conv, then the genre head: what
    fine-tuning trains, on the activations entering block `stop`. Batch norms stay frozen."""

    def __init__(self, net: EfficientNetLite, head: Head, stop: int):
        super().__init__()
        self.net, self.head, self.stop = net, head, stop

    def forward(self, A: torch.Tensor) -> torch.Tensor:
        return self.head(self.net.features(A, start=self.stop))

    def train(self, mode: bool = True) -> Tail:
        super().train(mode)
        self.net.eval()
        return self

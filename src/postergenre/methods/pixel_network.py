"""What the study's two networks on pixels share: posters normalised with ImageNet's statistics
in, one logit per genre out (sigmoid + BCE, Adam), trained by the one loop, saved as weights.pt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from postergenre.device import torch_device
from postergenre.methods import training
from postergenre.methods.base import Estimator, read_saved

# ImageNet statistics: what the pretrained ResNet34 expects, harmless for the custom CNN.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def to_input(X: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 posters [n, H, W, 3] -> normalised float [n, 3, H, W], channels-last in memory."""
    x = torch.from_numpy(np.ascontiguousarray(X)).to(device).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


class PixelNetwork(Estimator):
    """An Estimator around a torch network on posters; subclasses say how to `build` it."""

    def __init__(self, genres: list[str], size: str, seed: int = 0, epochs: int = 5,
                 batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.0, **params):
        super().__init__(genres, size, seed, epochs=epochs, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, **params)
        self.history: list[dict[str, float]] = []
        self.net: nn.Module | None = None

    def build(self, pretrained: bool = True) -> nn.Module:
        raise NotImplementedError

    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None, checkpoints=None) -> None:
        p = self.params
        torch.manual_seed(self.seed)  # the initial weights are part of the run
        net = self.build().to(torch_device()).to(memory_format=torch.channels_last)
        Yt = torch.from_numpy(Y.astype(np.float32))

        def batch(idx: np.ndarray, device: torch.device):
            return to_input(X[idx], device), Yt[idx].to(device)

        settings = training.LoopSettings(
            epochs=p["epochs"], batch_size=p["batch_size"], seed=self.seed, name=self.method,
            checkpoints=checkpoints,
            fingerprint=training.fingerprint({**p, "genres": self.genres, "seed": self.seed,
                                              "size": self.size, "epochs": None}, X, Y))
        optimiser = torch.optim.Adam(net.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
        has_dev = dev is not None and len(dev[0])
        with training.distributed(), training.configured(p.get("training")):
            self.history = training.train(
                net, optimiser, nn.BCEWithLogitsLoss(), batch, len(X), settings,
                dev_scores=(lambda m: training.scores(m, dev[0], to_input, p["batch_size"]))
                if has_dev else None,
                Y_dev=dev[1] if has_dev else None, on_epoch=on_epoch)
        self.net = net

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._check_X(X)
        if len(X) == 0:
            return np.zeros((0, len(self.genres)))
        with training.configured(self.params.get("training")):
            return training.scores(self.net, X, to_input, self.params["batch_size"])

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

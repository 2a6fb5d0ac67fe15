"""A head on backbone features: standardise, then a linear layer or one hidden ReLU layer, trained
by the one loop on an imbalance-aware loss. The dev split picks the weight decay among candidates
and the epoch (by mAP). Optionally it also fine-tunes the backbone's last blocks.

Regularisers, off by default (each measured in docs/results.md): `noise`, Gaussian noise of that
many feature sds added to each training batch; `mixup`, each training example blended with
another of its batch by a Beta(mixup, mixup) share, labels alike (Zhang et al., ICLR 2018);
`views_as_samples`, each view's features a training example of its own (the backbones side by
side, the same size as averaged views), the views' scores averaged at prediction.

Fine-tuning (`finetune_blocks` > 0) runs the frozen part of the backbone once over the posters and
trains only the last blocks, the 1x1 head conv and the genre head on its output, batch norms
frozen; the tuned weights are kept only if a dev epoch beats the stock ones.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, get_args

import numpy as np
from pydantic import Field

from postergenre.core import dataset
from postergenre.core.device import distributed, torch_device
from postergenre.core.lazy import lazy_module
from postergenre.core.settings import Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from postergenre.methods.base import Estimator, Input, read_saved
from postergenre.methods.features.feature_input import FeatureInput
from postergenre.methods.nets import training
from postergenre.progress import Progress

if TYPE_CHECKING:  # what a type checker reads; at run time each is imported on first use
    import torch
    from torch import nn

    from postergenre.core import backbone as bb
    from postergenre.methods.features import networks
else:
    torch = lazy_module("torch")  # (core/lazy.py)
    nn = lazy_module("torch.nn")
    bb = lazy_module("postergenre.core.backbone")
    networks = lazy_module("postergenre.methods.features.networks")

log = logging.getLogger(__name__)

Loss = Literal["bce", "weighted_bce", "asl"]
LOSSES = get_args(Loss)
_SCORE_BATCH = 4096


def asymmetric_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    margin: float = 0.05,
) -> torch.Tensor:
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


def _features_to_tensor(F: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.asarray(F, dtype=np.float32)).to(device)


class Settings(training.NetsSettings):
    """feature_methods.head: standardise the features, then a linear layer (hidden 0) or one
    hidden ReLU layer, on an imbalance-aware loss; the dev split picks the weight decay among
    the candidates and the epoch (by mAP)."""

    input: ClassVar[Input] = "features"
    epochs: PositiveInt = 40
    batch_size: PositiveInt = 256
    lr: PositiveFloat = 0.0003
    hidden: NonNegativeInt = 512
    dropout: Fraction = 0.5
    loss: Loss = "weighted_bce"
    weight_decay: Annotated[list[NonNegativeFloat], Field(min_length=1)] = [1.0, 3.0, 10.0]
    oversample: bool = False  # draw rare-genre movies more often (square-root rebalancing)
    finetune_blocks: Annotated[int, Field(ge=0, le=16)] = 0  # Lite0 has 16 blocks
    finetune_epochs: PositiveInt = 3
    finetune_lr: PositiveFloat = 0.0001
    finetune_batch_size: PositiveInt = 32
    noise: NonNegativeFloat = 0.0  # feature sds of Gaussian noise on each training batch
    mixup: NonNegativeFloat = 0.0  # Beta(mixup, mixup) blend of batch pairs; 0 = off
    views_as_samples: bool = False  # each view a training example; its scores averaged


class FeatureHead(FeatureInput, Estimator):
    """A linear (or one-hidden-layer) head on backbone features."""

    method = "head"

    Settings = Settings

    def __init__(self, genres: list[str], size: str, seed: int = 0, **params: Any):
        super().__init__(genres, size, seed, **params)
        self._init_backbone()
        if self.params["finetune_blocks"] and (len(self.backbone_names) > 1 or self.views != ["squash"]):
            raise ValueError(
                "finetune_blocks > 0 tunes one backbone on squashed posters: set "
                "embed.backbones to one backbone and embed.views to [squash] (got "
                f"{self.backbone_names}, {self.views})"
            )
        if self._by_view and self.params["finetune_blocks"]:
            raise ValueError("views_as_samples reads every view's features: set finetune_blocks to 0")
        self.head: networks.Head | None = None
        self.history: list[dict[str, float]] = []
        self.selection: list[dict[str, float]] = []
        self.chosen_weight_decay: float | None = None

    # -- what it reads -------------------------------------------------------------------------
    @property
    def _by_view(self) -> bool:
        return bool(self.params.get("views_as_samples"))

    @property
    def _sample_dim(self) -> int:
        """What the genre head reads: one view's features of every backbone, or the pooled ones."""
        return bb.FEATURES * len(self.backbone_names) if self._by_view else self.feature_dim

    @property
    def feature_dim(self) -> int:
        if self._by_view:
            return bb.FEATURES * len(self.backbone_names) * len(self.views)
        return super().feature_dim

    def pool(self, parts: dict[tuple[str, str], np.ndarray]) -> np.ndarray:
        """With `views_as_samples`, view by view (each view's backbones side by side): a row
        reshaped to [views, backbones x 1280] is the view's examples; else `embed.pool`'s."""
        if not self._by_view:
            return super().pool(parts)
        columns = [
            np.asarray(parts[name, v], dtype=np.float32) for v in self.views for name in self.backbone_names
        ]
        return np.ascontiguousarray(np.hstack(columns), dtype=np.float32)

    def pooled_slice(self, name: str, view: str) -> tuple[slice, float]:
        if not self._by_view:
            return super().pooled_slice(name, view)
        at = self.views.index(view) * len(self.backbone_names) + self.backbone_names.index(name)
        return slice(at * bb.FEATURES, (at + 1) * bb.FEATURES), 1.0

    def _as_samples(self, F: np.ndarray) -> np.ndarray:
        """[n, feature_dim] -> [n x views, sample_dim]: one row per poster and view."""
        return np.ascontiguousarray(F.reshape(len(F) * len(self.views), self._sample_dim))

    def _scores(self, head: nn.Module, F: np.ndarray) -> np.ndarray:
        """Sigmoid scores of posters' features; with `views_as_samples`, their views' mean."""
        if not self._by_view:
            return training.scores(head, F, _features_to_tensor, _SCORE_BATCH)
        P = training.scores(head, self._as_samples(F), _features_to_tensor, _SCORE_BATCH)
        return P.reshape(len(F), len(self.views), -1).mean(axis=1)

    @property
    def fits_on_prediction_inputs(self) -> bool:
        return not self.params["finetune_blocks"]

    def inputs(self, split: str, genres: list[str], training: bool = False) -> dataset.Split:
        """Fine-tuning trains on posters; everything else reads features."""
        if training and not self.fits_on_prediction_inputs:
            return dataset.load_split(split, self.size, genres)
        return super().inputs(split, genres, training)

    def _check_fit_X(self, X: np.ndarray) -> None:
        if not self.params["finetune_blocks"]:
            return self._check_X(X)
        if X.ndim != 4 or X.shape[-1] != 3:
            raise ValueError(
                f"finetune_blocks > 0 trains on posters [n, height, width, 3], got shape {list(X.shape)}"
            )

    # -- training ------------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, Y: np.ndarray, dev=None, on_epoch=None, checkpoints=None) -> None:
        p = self.params
        stop = self.backbone().n_blocks - p["finetune_blocks"]
        has_dev = dev is not None and len(dev[0]) > 0
        if p["finetune_blocks"]:
            log.info("fine-tune: running the frozen blocks 0..%d once over %d posters", stop - 1, len(X))
            A = self._trunk(X, stop)
            A_dev = self._trunk(dev[0], stop) if has_dev else None
            F = self._tail_features(A, stop)
            F_dev = self._tail_features(A_dev, stop) if has_dev else None
        else:
            F, F_dev = np.asarray(X, dtype=np.float32), dev[0] if has_dev else None
            if self._by_view:
                F, Y = self._as_samples(F), np.repeat(Y, len(self.views), axis=0)
            for name in self.backbone_names:
                self.backbone(name)  # records the weights' sha256
        Y_dev = dev[1] if has_dev else None
        best = None
        self.selection = []
        with distributed(), training.configured(p.get("training")):
            for wd in p["weight_decay"]:
                head, history = self._train_head(F, Y, F_dev, Y_dev, wd, checkpoints)
                score = training.best_dev_score(history)
                self.selection.append(
                    {
                        "weight_decay": wd,
                        "dev_mAP": round(score, 6) if has_dev else None,
                        "epoch": max(history, key=lambda r: r.get("dev_mAP", 0))["epoch"]
                        if has_dev
                        else p["epochs"],
                    }
                )
                log.info("head: weight_decay=%g -> best dev mAP %.4f", wd, score)
                if best is None or score > best[2]:
                    best = (head, history, score, wd)
            self.head, self.history, _, self.chosen_weight_decay = best
            if on_epoch is not None:
                for record in self.history:
                    on_epoch(record)
            if p["finetune_blocks"]:
                # Kept only if some epoch beat the stock backbone on dev; else the model is the
                # head on stock features, and the cached features still fit it.
                self.finetuned = self._finetune(
                    A, Y, A_dev, Y_dev, stop, self.chosen_weight_decay, checkpoints
                )
                self._fused = {}

    def _new_head(self, F: np.ndarray) -> networks.Head:
        p = self.params
        head = networks.Head(self._sample_dim, len(self.genres), p["hidden"], p["dropout"])
        head.mean.copy_(torch.from_numpy(F.mean(axis=0)))
        head.std.copy_(torch.from_numpy(F.std(axis=0) + 1e-6))
        return head

    def _loss(self, Y: np.ndarray, device: torch.device):
        loss_fn = loss_function(self.params["loss"], Y)
        return loss_fn.to(device) if isinstance(loss_fn, nn.Module) else loss_fn

    def _settings(self, name: str, epochs: int, batch_size: int, checkpoints, data, **extra):
        settings = {k: v for k, v in self.params.items() if k != "epochs"}
        return training.LoopSettings(
            epochs=epochs,
            batch_size=batch_size,
            seed=self.seed,
            name=name,
            checkpoints=checkpoints,
            fingerprint=training.fingerprint(
                {**settings, "name": name, "seed": self.seed, "genres": self.genres}, *data
            ),
            **extra,
        )

    def _train_head(self, F, Y, F_dev, Y_dev, wd: float, checkpoints):
        """One weight-decay candidate: AdamW on the chosen loss; the head comes back holding its
        best dev epoch's weights."""
        p = self.params
        device = torch_device()
        torch.manual_seed(self.seed)
        head = self._new_head(F).to(device)
        Ft, Yt = torch.from_numpy(F), torch.from_numpy(Y.astype(np.float32))

        def batch(idx: np.ndarray, device: torch.device):
            # random draws from torch's generator, which the loop seeds per epoch (resumable)
            x, y = Ft[idx].to(device), Yt[idx].to(device)
            if p["noise"]:
                x = x + torch.randn_like(x) * (head.std * p["noise"])
            if p["mixup"]:
                share = torch.distributions.Beta(p["mixup"], p["mixup"]).sample((len(x), 1)).to(device)
                other = torch.randperm(len(x)).to(device)
                x, y = share * x + (1 - share) * x[other], share * y + (1 - share) * y[other]
            return x, y

        settings = self._settings(
            f"head-wd{wd:g}",
            p["epochs"],
            p["batch_size"],
            checkpoints,
            (F, Y),
            sample_weights=oversampling_weights(Y) if p["oversample"] else None,
            record={"weight_decay": wd},
        )
        optimiser = torch.optim.AdamW(head.parameters(), lr=p["lr"], weight_decay=wd)
        history = training.train(
            head,
            optimiser,
            self._loss(Y, device),
            batch,
            len(F),
            settings,
            dev_scores=(lambda m: self._scores(m, F_dev)) if F_dev is not None else None,
            Y_dev=Y_dev,
        )
        return head.cpu(), history

    # -- fine-tuning the last blocks -----------------------------------------------------------
    def _trunk(self, X: np.ndarray, stop: int) -> torch.Tensor:
        """Activations entering block `stop` for every poster, with progress every 10 s."""
        net = self.backbone().eval()
        bs = self.params["embed_batch_size"]
        side = bb.resolution(self.backbone_names[0])
        parts = []
        with torch.no_grad(), Progress("fine-tune: frozen blocks", len(X), "poster") as bar:
            for s in range(0, len(X), bs):
                x = bb.view_input(bb.to_input(X[s : s + bs]), "squash", side)
                parts.append(net.trunk(x, stop))
                bar.update(len(parts[-1]))
        return torch.cat(parts)

    def _tail_features(self, A: torch.Tensor, stop: int) -> np.ndarray:
        net = self.backbone().eval()
        with torch.no_grad():
            return torch.cat(
                [net.features(A[s : s + 256], start=stop) for s in range(0, len(A), 256)]
            ).numpy()

    def _finetune(self, A, Y, A_dev, Y_dev, stop: int, wd: float, checkpoints) -> bool:
        """Train blocks[stop:], the 1x1 head conv and the genre head together from the chosen
        head; keep the best dev epoch, or the stock weights if none beat them (epoch 0). Returns
        whether the backbone changed."""
        p = self.params
        device = torch_device()
        net, head = self.backbone(), self.head
        for param in net.parameters():
            param.requires_grad_(False)
        trainable = [*net.blocks[stop:].parameters(), *net.head.parameters()]
        for param in trainable:
            param.requires_grad_(True)
        tail = networks.Tail(net, head, stop).to(device)
        Yt = torch.from_numpy(Y.astype(np.float32))

        def batch(idx: np.ndarray, device: torch.device):
            return A[torch.from_numpy(idx)].to(device), Yt[idx].to(device)

        settings = self._settings(
            "head-finetune",
            p["finetune_epochs"],
            p["finetune_batch_size"],
            checkpoints,
            (A.numpy(), Y),
            score_initial=True,
            record={"finetune": True},
        )
        optimiser = torch.optim.AdamW([*trainable, *head.parameters()], lr=p["finetune_lr"], weight_decay=wd)
        history = training.train(
            tail,
            optimiser,
            self._loss(Y, device),
            batch,
            len(A),
            settings,
            dev_scores=(lambda m: training.scores(m, A_dev, lambda a, d: a.to(d), 64))
            if A_dev is not None
            else None,
            Y_dev=Y_dev,
        )
        tail.cpu()
        for param in net.parameters():
            param.requires_grad_(False)
        net.eval()
        head.eval()
        for record in history:
            record["epoch"] += p["epochs"]  # after the head's epochs, in the plots
        self.history += [r for r in history if r["epoch"] > p["epochs"]]
        kept = max(history, key=lambda r: r.get("dev_mAP", -np.inf)) if A_dev is not None else history[-1]
        return kept["epoch"] > p["epochs"]

    # -- prediction and saving -----------------------------------------------------------------
    has_heatmaps = True

    def cam_view(self) -> str:
        """The view heat maps are drawn in: a whole-poster one where the model reads one."""
        return next((v for v in ("squash", "aspect", "flip") if v in self.views), self.views[0])

    def cam_activations(self, X: np.ndarray, inputs: np.ndarray):
        """The first backbone's last block in one view, every other feature held at its value in
        `inputs` (the pooled features the scores came from), so the scored value is unchanged;
        with `views_as_samples`, the logits of that view's own example (the score averages the
        views' scores)."""
        name, view = self.backbone_names[0], self.cam_view()
        net = self.fused_backbone(name)  # batch norm folded, as the scores were computed
        x = bb.view_input(bb.to_input(X), view, bb.resolution(name))
        with torch.enable_grad():
            A = net.head(net.blocks(net.stem(x)))
            feat = A.mean(dim=(2, 3))
            where, scale = self.pooled_slice(name, view)
            f = torch.from_numpy(np.array(inputs, dtype=np.float32))
            # the gradient flows into this view; the pooled value stays the scored one
            f[:, where] = f[:, where] + (feat - feat.detach()) * scale
            if self._by_view:  # the drawn view's own example: its logits
                v = self.views.index(view) * self._sample_dim
                f = f[:, v : v + self._sample_dim]
            logits = self.head.eval()(f)
        return A, logits, view

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._check_X(X)
        if len(X) == 0:
            return np.zeros((0, len(self.genres)))
        with training.configured(self.params.get("training")):
            return self._scores(self.head, X)

    def _state(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "selection": self.selection,
            "chosen_weight_decay": self.chosen_weight_decay,
            **self._backbone_state(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.history = state["history"]
        self.selection = state["selection"]
        self.chosen_weight_decay = state["chosen_weight_decay"]
        self._set_backbone_state(state)

    def _save_weights(self, folder: Path) -> None:
        torch.save({k: v.cpu() for k, v in self.head.state_dict().items()}, folder / "head.pt")
        self._save_backbone(folder)

    def _load_weights(self, folder: Path) -> None:
        state = read_saved(folder / "head.pt")
        self.head = networks.Head(
            self._sample_dim, len(self.genres), self.params["hidden"], self.params["dropout"]
        )
        self.head.load_state_dict(state)
        self.head.eval()
        self._load_backbone(folder)

"""Fine-tuning on posters: augmentation, warm-up, a slower trunk, and EfficientNet-Lite trained
whole (tiny here: the real runs want a GPU)."""

import numpy as np
import pytest
import torch

from postergenre.core import backbone as bb
from postergenre.methods import load_model
from postergenre.methods.custom import CustomCNNEstimator
from postergenre.methods.lite import LiteEstimator
from postergenre.methods.nets.pixel_network import augment, to_unit
from postergenre.methods.nets.training import warmup_factor

GENRES = ["g0", "g1", "g2"]


def test_augmentation_crops_flips_and_jitters_each_poster_its_own_way():
    rng = np.random.default_rng(0)
    X = np.zeros((64, 30, 20, 3), dtype=np.uint8)
    X[:, :, :10] = 200  # bright left half
    X[:, :, :, 2] = rng.integers(0, 255, (64, 30, 20))
    x = to_unit(X, torch.device("cpu"))
    torch.manual_seed(1)
    a = augment(x)
    assert a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    left, right = a[:, 0, :, :10].mean(dim=(1, 2)), a[:, 0, :, 10:].mean(dim=(1, 2))
    flipped = (right > left).float().mean()
    assert 0.25 < flipped < 0.75  # about half mirrored
    assert not torch.allclose(a[0], a[1])  # each poster its own draw
    torch.manual_seed(1)
    assert torch.equal(augment(x), a)  # the loop's seed decides: a resumed epoch draws the same


def test_warmup_rises_linearly_then_holds():
    assert warmup_factor(1, 0, 4, 0) == 1.0
    got = [warmup_factor(e, s, 4, 2) for e in (1, 2, 3) for s in range(4)]
    assert got[:8] == pytest.approx([i / 8 for i in range(1, 9)]) and got[8:] == [1.0] * 4


def test_a_slower_trunk_gets_its_own_learning_rate():
    model = CustomCNNEstimator(GENRES, "16x16", lr=1e-3, trunk_lr_factor=0.1)
    net = model.build()
    groups = model.optimiser(net).param_groups
    assert [g["lr"] for g in groups] == [pytest.approx(1e-4), 1e-3]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    assert groups[1]["params"][0] is net.head[-1].weight
    one = CustomCNNEstimator(GENRES, "16x16", lr=1e-3).optimiser(net).param_groups
    assert len(one) == 1  # the study's way: one group, as before
    with pytest.raises(ValueError, match="'trunk_lr_factor' must be less than or equal to 1"):
        CustomCNNEstimator(GENRES, "16x16", trunk_lr_factor=2.0)


def test_lite_fine_tunes_from_the_wheel_weights_and_saves_whole(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    Y = (rng.random((24, 3)) < 0.4).astype(np.uint8)
    model = LiteEstimator(
        GENRES,
        "32x32",
        seed=0,
        epochs=2,
        batch_size=8,
        lr=1e-3,
        augment=True,
        warmup_epochs=1,
        trunk_lr_factor=0.1,
        dropout=0.2,
    )
    stock = bb.load_backbone().state_dict()
    model.fit(X, Y, dev=(X[:8], Y[:8]))
    assert len(model.history) == 2 and "dev_mAP" in model.history[0]
    tuned = model.net.backbone.state_dict()
    moved = [k for k in stock if k.endswith("weight") and not torch.equal(stock[k], tuned[k])]
    assert "stem.0.weight" in moved and len(moved) > 50  # the whole network trained
    P = model.predict_proba(X)
    model.save(tmp_path / "lite")
    assert np.allclose(load_model(tmp_path / "lite").predict_proba(X), P, atol=1e-6)
    x = model.to_input(X[:2], torch.device("cpu"))  # Lite's own scaling, not ImageNet's
    assert torch.allclose(x, bb.to_input(X[:2]), atol=1e-5)

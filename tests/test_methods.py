import socket
import time

import numpy as np
import pytest
import torch

from postergenre.methods import load_model
from postergenre.methods.custom import CustomCNNEstimator
from postergenre.methods.knn.neighbours import flatten, neighbours, self_neighbours
from postergenre.methods.mlknn import MLkNN
from postergenre.methods.ovr import OneVsRestKNN
from postergenre.methods.resnet34 import ResNet34Estimator, build_resnet34, resnet34_imagenet_state

GENRES = ["g0", "g1", "g2", "g3", "g4"]


def fixture(n=240, seed=0, size=(6, 8)):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, size[1], size[0], 3), dtype=np.uint8)
    Y = (rng.random((n, 5)) < [0.5, 0.3, 0.2, 0.1, 0.05]).astype(np.uint8)
    return X, Y


def _brute_force(train, query, k):
    """Exact squared distances in integers, ties to the lower index."""
    d = (
        ((query.astype(np.int64)[:, None] - train.astype(np.int64)[None]) ** 2)
        .reshape(len(query), len(train), -1)
        .sum(-1)
    )
    return np.array([np.lexsort((np.arange(len(train)), row))[:k] for row in d])


def test_neighbours_are_those_of_exact_distances_ties_to_the_lower_index():
    X, _ = fixture()
    X[100], X[200] = X[7], X[7]  # three equal posters: every query is equally far from each
    Q, _ = fixture(30, seed=1)
    Q[3] = X[7]
    assert np.array_equal(neighbours(X, Q, 7), _brute_force(X, Q, 7))
    assert list(neighbours(X, Q, 3)[3]) == [7, 100, 200]
    assert np.array_equal(self_neighbours(X, 9), _brute_force(X, X, 9))


def test_neighbours_in_blocks_equal_neighbours_in_one(monkeypatch):
    from postergenre.methods.knn import neighbours as module

    X, _ = fixture(300)
    X[250] = X[10]  # a tie across blocks
    Q, _ = fixture(45, seed=3)
    whole = neighbours(X, Q, 12), self_neighbours(X, 12)
    monkeypatch.setattr(module, "BLOCK", 32)  # 10 blocks of training rows, 2 of queries
    assert np.array_equal(neighbours(X, Q, 12), whole[0])
    assert np.array_equal(self_neighbours(X, 12), whole[1])
    assert np.array_equal(whole[1], _brute_force(X, X, 12))


def test_int8_products_on_torch_equal_float64_ones_to_the_last_digit(monkeypatch):
    from postergenre.methods.knn import neighbours as module

    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (37, 1001), dtype=np.uint8)
    b = rng.integers(0, 256, (23, 1001), dtype=np.uint8)
    a[0], b[0], b[1] = 0, 0, 255  # the extremes: -128 * -128 and -128 * 127 in every term
    exact = (a.astype(np.int64) - 128) @ (b.astype(np.int64) - 128).T
    va, vb = module.pixel_vectors(a), module.pixel_vectors(b)
    blas = module._products(va, vb, use_torch=False)
    monkeypatch.setattr(module, "INT32_VALUES", 100)  # eleven slices of 91, summed across
    kernel = module._products(va, vb, use_torch=True)
    assert np.array_equal(blas, exact) and np.array_equal(kernel, exact)
    assert np.array_equal(module._squared_norms(va), ((a.astype(np.int64) - 128) ** 2).sum(1))


@pytest.mark.parametrize("n_values", [64, 65, 127, 1024, 4099])
def test_the_int8_kernel_sums_exactly_for_every_row_length_it_is_given(n_values):
    from postergenre.methods.knn import neighbours as module

    rng = np.random.default_rng(n_values)
    a = rng.integers(0, 256, (70, n_values), dtype=np.uint8)
    b = rng.integers(0, 256, (9, n_values), dtype=np.uint8)
    exact = (a.astype(np.int64) - 128) @ (b.astype(np.int64) - 128).T
    kernel = module._products(module.pixel_vectors(a), module.pixel_vectors(b), use_torch=True)
    assert n_values >= module.INT8_MIN_VALUES and np.array_equal(kernel, exact)


def test_searches_below_and_above_the_torch_threshold_find_the_same_neighbours(monkeypatch):
    from postergenre.methods.knn import neighbours as module

    X, _ = fixture(300)
    X[250] = X[10]
    Q, _ = fixture(45, seed=3)
    monkeypatch.setattr(module, "_use_torch", lambda *shape: False)
    X, Q = np.repeat(X, 4, axis=2), np.repeat(Q, 4, axis=2)  # 576 values: the kernel's to take
    blas = neighbours(X, Q, 12), self_neighbours(X, 12)
    monkeypatch.setattr(module, "_use_torch", lambda *shape: True)
    assert np.array_equal(neighbours(X, Q, 12), blas[0])
    assert np.array_equal(self_neighbours(X, 12), blas[1])
    assert np.array_equal(blas[1], _brute_force(X, X, 12))


def test_self_neighbours_start_with_the_poster_itself():
    X, _ = fixture()
    idx = self_neighbours(X, 4)
    assert np.array_equal(idx[:, 0], np.arange(len(X)))


@pytest.mark.parametrize("k", [1, 5, 12])
def test_mlknn_predicts_exactly_what_scikit_multilearn_does(k):
    from skmultilearn.adapt import MLkNN as Reference

    X, Y = fixture()
    Q, _ = fixture(60, seed=2)
    ours = MLkNN(GENRES, "6x8", k=k).fit(X, Y)
    ref = Reference(k=k).fit(flatten(X).astype(np.float64), Y)
    ref_proba = ref.predict_proba(flatten(Q).astype(np.float64)).toarray()
    assert np.allclose(ours.predict_proba(Q), ref_proba, rtol=0, atol=1e-12)
    assert np.array_equal(ours.predict(Q), ref.predict(flatten(Q).astype(np.float64)).toarray())


def test_ovr_score_is_the_share_of_neighbours_with_the_genre():
    # Posters that are flat grey levels: the neighbours of level v are the closest levels.
    levels = np.array([0, 10, 20, 200, 210, 220], dtype=np.uint8)
    X = np.repeat(levels[:, None, None, None], 12, axis=1).reshape(6, 2, 2, 3)
    Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [1, 1]], dtype=np.uint8)
    model = OneVsRestKNN(["a", "b"], "2x2", k=3).fit(X, Y)
    Q = np.full((1, 2, 2, 3), 5, dtype=np.uint8)
    assert np.allclose(model.predict_proba(Q), [[2 / 3, 1 / 3]])


def test_knn_models_round_trip_and_reject_other_sizes(tmp_path):
    X, Y = fixture()
    model = MLkNN(GENRES, "6x8", k=5).fit(X, Y)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.k == 5 and np.array_equal(again.predict_proba(X[:9]), model.predict_proba(X[:9]))
    with pytest.raises(ValueError, match="trained on"):
        again.predict_proba(np.zeros((2, 4, 4, 3), dtype=np.uint8))


def test_k_larger_than_training_set_is_a_clear_error():
    X, Y = fixture(5)
    with pytest.raises(ValueError, match="k=10 is more than the 5 training posters"):
        MLkNN(GENRES, "6x8", k=10).fit(X, Y)


def test_custom_cnn_trains_logs_dev_loss_and_round_trips(tmp_path):
    X, Y = fixture(96, size=(16, 16))
    records = []
    model = CustomCNNEstimator(GENRES, "16x16", seed=3, epochs=2, batch_size=32)
    model.fit(X, Y, dev=(X[:20], Y[:20]), on_epoch=records.append)
    assert [r["epoch"] for r in records] == [1, 2] and all("dev_loss" in r for r in records)
    proba = model.predict_proba(X[:10])
    assert proba.shape == (10, 5) and ((proba > 0) & (proba < 1)).all()
    model.save(tmp_path / "m")
    assert np.allclose(load_model(tmp_path / "m").predict_proba(X[:10]), proba, atol=1e-6)


def test_training_is_deterministic_for_a_seed():
    X, Y = fixture(64, size=(16, 16))
    a = CustomCNNEstimator(GENRES, "16x16", seed=1, epochs=1, batch_size=16).fit(X, Y)
    b = CustomCNNEstimator(GENRES, "16x16", seed=1, epochs=1, batch_size=16).fit(X, Y)
    assert np.array_equal(a.predict_proba(X[:8]), b.predict_proba(X[:8]))


def test_resnet34_has_one_logit_per_genre():
    net = build_resnet34(7, "none")
    assert net.fc.out_features == 7
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 7)


def test_resnet34_loads_a_local_state_dict_without_its_1000_class_layer(tmp_path):
    from torchvision.models import resnet34

    source = resnet34(weights=None)
    torch.save(source.state_dict(), tmp_path / "r34.pth")
    net = build_resnet34(5, str(tmp_path / "r34.pth"))
    assert torch.equal(net.conv1.weight, source.conv1.weight)
    assert torch.equal(net.layer4[2].bn2.running_var, source.layer4[2].bn2.running_var)


def test_resnet34_rejects_a_file_that_is_not_a_resnet34(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="not a ResNet34 state dict"):
        build_resnet34(5, str(tmp_path / "x.pth"))
    with pytest.raises(FileNotFoundError, match="imagenet, none, or a state-dict path"):
        build_resnet34(5, str(tmp_path / "missing.pth"))


def test_imagenet_weights_offline_fail_fast_naming_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    start = time.monotonic()
    with pytest.raises(RuntimeError) as err:
        resnet34_imagenet_state()
    assert time.monotonic() - start < 5
    assert "weights: none" in str(err.value) and "local file" in str(err.value)


def test_imagenet_weights_come_from_the_torch_cache_when_present(tmp_path, monkeypatch):
    """The real path up to the download: a cached file is used and nothing is fetched."""
    from torchvision.models import ResNet34_Weights, resnet34

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    url = ResNet34_Weights.IMAGENET1K_V1.url
    (tmp_path / "checkpoints").mkdir()
    state = resnet34(weights=None).state_dict()
    torch.save(state, tmp_path / "checkpoints" / url.rsplit("/", 1)[1])
    monkeypatch.setattr(
        socket, "create_connection", lambda *a, **k: pytest.fail("must not touch the network")
    )
    loaded = torch.hub.load_state_dict_from_url  # the loader torchvision calls

    def no_hash_check(url, *args, **kwargs):
        kwargs["check_hash"] = False  # our stand-in file cannot have torchvision's hash
        return loaded(url, *args, **kwargs)

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_hash_check)
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", no_hash_check, raising=False)
    got = resnet34_imagenet_state()
    assert torch.equal(got["conv1.weight"], state["conv1.weight"])


def test_resnet34_estimator_round_trips(tmp_path):
    X, Y = fixture(32, size=(32, 32))
    model = ResNet34Estimator(GENRES, "32x32", seed=0, epochs=1, batch_size=16).fit(X, Y)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert np.allclose(again.predict_proba(X[:4]), model.predict_proba(X[:4]), atol=1e-5)

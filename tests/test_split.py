import numpy as np
import pytest

from postergenre.data.split import split_indices, stratified_subset, write_split


def labels(n=1000, g=8, seed=0):
    rng = np.random.default_rng(seed)
    p = np.linspace(0.5, 0.03, g)
    Y = (rng.random((n, g)) < p).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    return Y


def test_split_is_a_partition_with_requested_fractions():
    Y = labels()
    train, dev, test = split_indices(Y, [0.8, 0.1, 0.1], seed=1)
    together = np.concatenate([train, dev, test])
    assert sorted(together.tolist()) == list(range(len(Y)))
    assert abs(len(train) - 800) <= 15 and abs(len(dev) - 100) <= 15 and abs(len(test) - 100) <= 15


def test_split_keeps_genre_proportions():
    Y = labels()
    parts = split_indices(Y, [0.8, 0.1, 0.1], seed=1)
    overall = Y.mean(0)
    for idx in parts:
        assert np.all(np.abs(Y[idx].mean(0) - overall) < 0.05)
    # Even the rarest genre (about 30 movies) reaches every set.
    assert all(Y[idx, -1].sum() >= 2 for idx in parts)


def test_split_is_deterministic_per_seed():
    Y = labels()
    a = split_indices(Y, [0.8, 0.1, 0.1], seed=3)
    b = split_indices(Y, [0.8, 0.1, 0.1], seed=3)
    c = split_indices(Y, [0.8, 0.1, 0.1], seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[2], c[2])


def test_caps_give_exact_sizes_like_the_study_knn_subsets():
    Y = labels(3000)
    train, dev, test = split_indices(Y, [0.8, 0.1, 0.1], seed=1, caps=[1600, 200, 200])
    assert (len(train), len(dev), len(test)) == (1600, 200, 200)
    assert len(set(train) | set(dev) | set(test)) == 2000


def test_stratified_subset_keeps_proportions():
    Y = labels(3000)
    idx = stratified_subset(Y, 500, seed=0)
    assert len(idx) == 500 and len(set(idx.tolist())) == 500
    assert np.all(np.abs(Y[idx].mean(0) - Y.mean(0)) < 0.04)


def test_too_few_movies_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot split 2 movies"):
        split_indices(labels()[:2], [0.8, 0.1, 0.1], seed=0)


def test_write_split_writes_ids_and_report(tmp_path):
    Y = labels(200)
    ids = [f"id{i}" for i in range(200)]
    params = {"train": 0.8, "dev": 0.1, "test": 0.1, "max_train": 0, "max_dev": 0, "max_test": 0}
    report = write_split(ids, Y, [f"g{j}" for j in range(8)], params, 0, tmp_path / "split")
    files = {s: (tmp_path / "split" / f"{s}.txt").read_text().split() for s in ("train", "dev", "test")}
    assert sum(len(v) for v in files.values()) == 200
    assert {s: len(v) for s, v in files.items()} == report["sizes"]
    assert report["genre_counts"]["train"]["g0"] == int(Y[[ids.index(i) for i in files["train"]], 0].sum())

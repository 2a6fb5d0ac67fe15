import numpy as np
import pytest

from postergenre.core.metrics import all_zeros, f1_metrics, label_set_metrics, study_metrics

Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
P = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 0], [0, 0, 0]])


def test_study_metrics_on_a_hand_worked_example():
    m = study_metrics(Y, P)
    assert m["all_match"] == 0.25  # only row 0 exactly right
    assert m["at_least_one_match"] == 0.5  # rows 0 and 2 share a genre
    assert m["hamming_loss"] == pytest.approx(4 / 12, abs=1e-6)
    assert m["binary_accuracy"] == pytest.approx(8 / 12, abs=1e-6)


def test_f1_on_a_hand_worked_example():
    m = f1_metrics(Y, P)
    # micro: tp=3, fp=1, fn=3 -> 6 / (6 + 4)
    assert m["micro_f1"] == pytest.approx(0.6, abs=1e-6)
    # per genre: g0 tp2 fp1 fn0 -> 0.8; g1 tp0 -> 0; g2 tp1 fn1 -> 2/3
    assert m["macro_f1"] == pytest.approx((0.8 + 0 + 2 / 3) / 3, abs=1e-6)
    # samples: row0 1, row1 0, row2 2/3, row3 0
    assert m["samples_f1"] == pytest.approx((1 + 0 + 2 / 3 + 0) / 4, abs=1e-6)


def test_all_zeros_predictor_scores_nothing_but_binary_accuracy():
    m = label_set_metrics(Y, all_zeros(Y))
    assert m["all_match"] == 0 and m["at_least_one_match"] == 0 and m["micro_f1"] == 0
    assert m["binary_accuracy"] == pytest.approx(1 - Y.mean(), abs=1e-6)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        study_metrics(Y, P[:, :2])


def test_empty_test_split_is_a_clear_error():
    with pytest.raises(ValueError, match="empty test split"):
        study_metrics(Y[:0], P[:0])


def test_genre_absent_from_test_split_has_no_ap_rather_than_zero():
    from postergenre.core.metrics import ranking_metrics

    Y2 = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    P2 = np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.1], [0.2, 0.4]])
    m = ranking_metrics(Y2, P2)
    assert m["per_genre_ap"] == [1.0, None] and m["undefined_ap"] == [1]
    assert m["mAP"] == 1.0 and m["macro_roc_auc"] == 1.0


def test_average_precision_is_scikit_learns_to_the_last_bit():
    from sklearn.metrics import average_precision_score

    from postergenre.core.metrics import average_precision, per_genre_ap

    rng = np.random.default_rng(7)
    for trial in range(500):
        y, p = _random_genre(rng, trial)
        assert average_precision(y, p) == average_precision_score(y, p), trial
    assert average_precision(np.array([0, 1, 1, 0]), np.array([0.1, 0.4, 0.35, 0.8])) == (
        pytest.approx((1 / 2 + 2 / 3) / 2)
    )
    with pytest.raises(ValueError, match="finite"):
        per_genre_ap(np.ones((3, 1)), np.array([[0.1], [np.nan], [0.3]]))


def _random_genre(rng, trial):
    """Random labels (both classes present) and scores, float32 or 64, often with many ties."""
    n = int(rng.integers(2, 200))
    y = (rng.random(n) < rng.random()).astype(int)
    y[rng.choice(n, 2, replace=False)] = [0, 1]
    p = rng.random(n).astype(np.float32 if trial % 2 else np.float64)
    if trial % 3 == 0:
        p = np.round(p, int(rng.integers(0, 3)))
    return y, p


def test_roc_auc_and_the_pr_curve_are_scikit_learns_to_the_last_bit():
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    from postergenre.core.metrics import pr_curve, roc_auc

    rng = np.random.default_rng(11)
    for trial in range(500):
        y, p = _random_genre(rng, trial)
        assert roc_auc(y, p) == roc_auc_score(y, p), trial
        precision, recall = pr_curve(y, p)
        theirs = precision_recall_curve(y, p)
        assert np.array_equal(precision, theirs[0]) and np.array_equal(recall, theirs[1]), trial
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75


def test_f1_precision_and_recall_are_scikit_learns_to_the_last_bit():
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    from postergenre.core.metrics import per_genre

    rng = np.random.default_rng(3)
    for trial in range(200):
        n, g = int(rng.integers(1, 60)), int(rng.integers(2, 8))  # one column reads as binary
        Yt = (rng.random((n, g)) < rng.random()).astype(np.uint8)
        Yp = (rng.random((n, g)) < rng.random()).astype(np.uint8)
        ours = f1_metrics(Yt, Yp)
        for average in ("micro", "macro", "samples"):
            assert ours[f"{average}_f1"] == round(f1_score(Yt, Yp, average=average, zero_division=0), 6), (
                trial,
                average,
            )
        table = per_genre(Yt, Yp, [f"g{j}" for j in range(g)])
        theirs = precision_recall_fscore_support(Yt, Yp, average=None, zero_division=0)
        for j in range(g):
            row = table[f"g{j}"]
            assert [row["precision"], row["recall"], row["f1"]] == [
                round(float(v[j]), 6) for v in theirs[:3]
            ], (trial, j)
            assert row["support"] == theirs[3][j]


def test_top_k_and_bce_on_a_hand_worked_example():
    from postergenre.core.metrics import bce_loss, top_k_accuracy

    Pk = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.1, 0.7, 0.6], [0.3, 0.2, 0.1]])
    # top-1 genres: 0, 2, 1, 0 -> hits in rows 0 and 2
    assert top_k_accuracy(Y, Pk, 1) == 0.5
    assert top_k_accuracy(Y, Pk, 3) == 1.0
    assert bce_loss(np.array([[1, 0]]), np.array([[0.5, 0.5]])) == pytest.approx(np.log(2), abs=1e-6)


def test_tuned_thresholds_maximise_each_genres_f1():
    from postergenre.core.metrics import tune_thresholds

    Yd = np.array([[1, 0], [1, 0], [0, 0], [0, 1]])
    Pd = np.array([[0.30, 0.9], [0.35, 0.1], [0.20, 0.2], [0.10, 0.6]])
    t = tune_thresholds(Yd, Pd, grid=np.array([0.1, 0.25, 0.5, 0.7]))
    # genre 0: >= 0.25 catches both positives and nothing else (F1 1); genre 1: 0.25 and 0.5
    # both give F1 2/3 (one hit, one false alarm), and ties go to the lower threshold.
    assert t.tolist() == [0.25, 0.25]


def test_report_names_the_command_that_reproduces_it():
    from postergenre.pipeline.report import reproduce_command

    data = {"source": "movielens", "path": "../m", "posters": "", "poster_key": "imdb_id"}
    assert reproduce_command({"data": {**data, "source": "synthetic"}}) == "dvc repro"
    params = {
        "data": data,
        "resize": {"sizes": ["64x64", "260x390"]},
        "embed": {
            "size": "260x390",
            "backbones": ["efficientnet_lite0", "efficientnet_lite2"],
            "views": ["squash", "flip"],
            "pool": "mean",
        },
    }
    assert reproduce_command(params) == (
        "dvc exp run -S data.source=movielens \\\n  -S data.path=../m \\\n"
        "  -S 'resize.sizes=[64x64,260x390]' \\\n  -S embed.size=260x390 \\\n"
        "  -S 'embed.backbones=[efficientnet_lite0,efficientnet_lite2]' \\\n"
        "  -S 'embed.views=[squash,flip]' \\\n  -S embed.pool=mean"
    )


# -- the bootstrap: every resample at once, as weights over the one set of posters ---------------


def _tied_scores(seed: int = 3, n: int = 240, g: int = 7):
    rng = np.random.default_rng(seed)
    Y = rng.random((n, g)) < 0.25
    Y[:, 2] = False  # a genre with no positive poster: no AP, left out of the means
    Y[:, 4] = True  # one with no negative: no ROC-AUC
    P = np.round(rng.random((n, g)), 1)  # ten distinct scores: ties everywhere
    return Y, P, P > 0.45


def test_the_bootstrap_with_every_poster_once_is_the_metrics_themselves():
    from postergenre.core import bootstrap
    from postergenre.core.metrics import f1_metrics, ranking_metrics

    Y, P, D = _tied_scores()
    one = bootstrap.replicates(Y, P, D, np.ones((1, len(Y))))
    ranking, f1 = ranking_metrics(Y.astype(int), P), f1_metrics(Y.astype(int), D.astype(int))
    for key, expected in [
        ("mAP", ranking["mAP"]),
        ("macro_roc_auc", ranking["macro_roc_auc"]),
        ("micro_f1", f1["micro_f1"]),
        ("macro_f1", f1["macro_f1"]),
    ]:
        assert abs(one[key][0] - expected) < 1e-6, key  # the metrics files round to 6 places


def test_each_resample_is_the_metrics_of_the_posters_it_drew():
    from postergenre.core import bootstrap
    from postergenre.core.metrics import f1_metrics, ranking_metrics

    Y, P, D = _tied_scores()
    W = bootstrap.resample_counts(len(Y), seed=7, resamples=40)
    assert W.shape == (40, len(Y)) and (W.sum(axis=1) == len(Y)).all()
    assert np.array_equal(W, bootstrap.resample_counts(len(Y), seed=7, resamples=40))  # seeded
    got = bootstrap.replicates(Y, P, D, W)
    for b in range(len(W)):
        drawn = np.repeat(np.arange(len(Y)), W[b].astype(int))  # the posters, as often as drawn
        Yb, Pb, Db = Y[drawn].astype(int), P[drawn], D[drawn].astype(int)
        ranking, f1 = ranking_metrics(Yb, Pb), f1_metrics(Yb, Db)
        assert abs(got["mAP"][b] - ranking["mAP"]) < 1e-6
        assert abs(got["macro_roc_auc"][b] - ranking["macro_roc_auc"]) < 1e-6
        assert abs(got["micro_f1"][b] - f1["micro_f1"]) < 1e-6
        assert abs(got["macro_f1"][b] - f1["macro_f1"]) < 1e-6


def test_a_paired_difference_is_read_from_the_same_resamples():
    from postergenre.core import bootstrap

    Y, P, D = _tied_scores()
    W = bootstrap.resample_counts(len(Y), seed=1)
    a = bootstrap.replicates(Y, P, D, W)["mAP"]
    noisy = np.clip(P + np.random.default_rng(0).normal(0, 0.3, P.shape), 0, 1)
    b = bootstrap.replicates(Y, noisy, D, W)["mAP"]
    low, high = bootstrap.interval(a)
    assert low < bootstrap.replicates(Y, P, D, np.ones((1, len(Y))))["mAP"][0] < high
    better = bootstrap.paired(a, b)
    assert bootstrap.verdict(better.difference) == "higher" and better.a_higher > 0.975
    assert bootstrap.verdict(bootstrap.paired(b, a).difference) == "lower"
    same = bootstrap.paired(a, a + np.random.default_rng(2).normal(0, 0.01, a.shape))
    assert bootstrap.verdict(same.difference) == "not distinguishable"

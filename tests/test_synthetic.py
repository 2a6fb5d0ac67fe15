import csv

import numpy as np

from postergenre.data.synthetic import GENRES, generate, sample_labels
from postergenre.data.vocab import STUDY_GENRE_COUNTS


def test_labels_have_one_to_three_genres_in_the_study_order():
    labels = sample_labels(6000, np.random.default_rng(0))
    assert all(1 <= len(set(g)) == len(g) <= 3 for g in labels)
    counts = {g: sum(g in lab for lab in labels) for g in GENRES}
    ranked = sorted(counts, key=counts.get, reverse=True)
    assert ranked[:2] == ["Drama", "Comedy"]
    assert ranked[-1] == "TV Movie"
    # Shares follow the study's, within a few points.
    total = sum(STUDY_GENRE_COUNTS.values())
    for g in GENRES:
        assert abs(counts[g] / sum(counts.values()) - STUDY_GENRE_COUNTS[g] / total) < 0.03


def test_generation_is_deterministic(tmp_path):
    generate(tmp_path / "a", n=20, seed=5, progress=False)
    generate(tmp_path / "b", n=20, seed=5, progress=False)
    for name in ["movies.csv", "posters/1.jpg", "posters/20.jpg"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_output_is_a_csv_source_with_2_3_posters(tmp_path):
    generate(tmp_path / "s", n=10, seed=0, width=60, height=90, progress=False)
    with open(tmp_path / "s" / "movies.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    from PIL import Image

    with Image.open(tmp_path / "s" / "posters" / rows[0]["poster"]) as im:
        assert im.size == (60, 90)


def test_genres_leave_a_learnable_but_imperfect_trace(tmp_path):
    """A plain linear model on tiny thumbnails beats guessing, yet is far from perfect."""
    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    generate(tmp_path / "s", n=800, seed=0, width=60, height=90, progress=False)
    with open(tmp_path / "s" / "movies.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    X = np.stack(
        [
            np.asarray(Image.open(tmp_path / "s" / "posters" / r["poster"]).resize((12, 18))).ravel() / 255.0
            for r in rows
        ]
    )
    y = np.array(["Drama" in r["genres"].split("|") for r in rows])
    y2 = np.array(["Horror" in r["genres"].split("|") for r in rows])
    aucs = []
    for target in (y, y2):
        clf = LogisticRegression(max_iter=2000, C=0.1).fit(X[:600], target[:600])
        aucs.append(roc_auc_score(target[600:], clf.predict_proba(X[600:])[:, 1]))
    assert all(0.6 < auc < 0.995 for auc in aucs), aucs

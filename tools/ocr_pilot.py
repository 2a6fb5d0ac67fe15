"""The poster's own text as a lever, measured as a pilot before it earns a stage.

Debian's `tesseract-ocr` reads a seeded sample of a run's training posters and all of its dev
and test posters (each poster once; the texts are kept in `<run>/data/ocr-pilot.jsonl`, so an
interrupted pilot resumes). Character n-grams of those texts (TF-IDF) feed one logistic
regression per genre, alone and beside the run's image features (each backbone's views averaged,
as `embed.pool=mean`), against the image features alone: decided on dev, reported on test,
both with the same bootstrap resamples as the run's report. Nothing is tuned: one fixed
regularisation for every model.

    apt-get install tesseract-ocr
    python tools/ocr_pilot.py --run /tmp/movielens-copy --posters ../shared/data/movielens-posters/posters

writes reports/<name>-ocr.md. Needs the run's data stages and embed stages (`dvc repro` there).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from postergenre.core import bootstrap, dataset, paths

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("train", "dev", "test")
LETTERS = 3  # a text "reads" if it has a word of at least this many letters


def ocr(poster: Path, timeout: float = 60.0) -> tuple[str, str | None]:
    """The poster's text (tesseract, sparse-text page mode), or '' and why none came."""
    try:
        done = subprocess.run(
            ["tesseract", str(poster), "stdout", "--psm", "11"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "", f"tesseract took over {timeout:.0f} s"
    if done.returncode != 0:
        return "", f"tesseract exit {done.returncode}: {done.stderr.strip()[-200:]}"
    return " ".join(done.stdout.split()), None


def read_texts(cache: Path) -> dict[str, dict]:
    if not cache.is_file():
        return {}
    rows = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {row["id"]: row for row in rows}


def ocr_all(ids: list[str], posters: dict[str, Path], cache: Path, jobs: int) -> dict[str, dict]:
    """Every id's text, reading only the posters the cache lacks; a line per poster as it comes."""
    texts = read_texts(cache)
    todo = [i for i in ids if i not in texts]
    print(f"ocr: {len(ids) - len(todo)} posters already read, {len(todo)} to read", flush=True)
    started = time.monotonic()
    with cache.open("a", encoding="utf-8") as out, ThreadPoolExecutor(jobs) as pool:
        for n, (movie_id, (text, error)) in enumerate(
            zip(todo, pool.map(lambda i: ocr(posters[i]), todo), strict=True), start=1
        ):
            row = {"id": movie_id, "text": text, "error": error}
            out.write(json.dumps(row) + "\n")
            out.flush()
            texts[movie_id] = row
            if n % 250 == 0 or n == len(todo):
                rate = n / max(time.monotonic() - started, 1e-9)
                print(f"ocr: {n}/{len(todo)} ({rate:.2f} posters/s)", flush=True)
    return texts


def logistic_scores(X_train, Y_train: np.ndarray, X_eval: list) -> list[np.ndarray]:
    """One logistic regression per genre; a genre with no positive in training scores 0."""
    from sklearn.linear_model import LogisticRegression

    out = [np.zeros((X.shape[0], Y_train.shape[1])) for X in X_eval]
    for j in range(Y_train.shape[1]):
        if Y_train[:, j].min() == Y_train[:, j].max():
            continue
        model = LogisticRegression(C=1.0, max_iter=2000).fit(X_train, Y_train[:, j])
        for o, X in zip(out, X_eval, strict=True):
            o[:, j] = model.predict_proba(X)[:, 1]
    return out


def image_features(run: Path, name: str, genres: list[str], params: dict) -> tuple[list[str], np.ndarray]:
    """A split's ids and features as the run's head reads them with `embed.pool=mean`."""
    columns, ids = [], []
    for backbone in params["embed"]["backbones"]:
        views = []
        for view in params["embed"]["views"]:
            part = dataset.load_features(name, backbone, view, genres, features=run / "data" / "features")
            ids = part.ids
            views.append(part.X)
        columns.append(np.mean(views, axis=0, dtype=np.float32))
    return ids, np.hstack(columns)


def cell(values: np.ndarray, point: float) -> str:
    low, high = bootstrap.interval(values)
    return f"{point:.4f} [{low:.3f}, {high:.3f}]"


def sample_ids(train_size: int, seed: int) -> dict[str, list[str]]:
    """A seeded sample of the training split (in split order), and all of dev and test."""
    ids = {s: (paths.split() / f"{s}.txt").read_text(encoding="utf-8").split() for s in SPLITS}
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(ids["train"]), size=min(train_size, len(ids["train"])), replace=False))
    return {**ids, "train": [ids["train"][r] for r in rows]}


def fit_and_score(
    run: Path, sample: dict[str, list[str]], texts: dict[str, dict], params: dict
) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Each split's labels, and each feature set's (dev, test) scores."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import StandardScaler

    genres, labels = dataset.read_genres(), dataset.read_labels()
    Y = {s: dataset.label_matrix([labels[i] for i in ids], genres) for s, ids in sample.items()}
    words = {s: [texts[i]["text"] for i in ids] for s, ids in sample.items()}
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=3, sublinear_tf=True)
    text = {"train": vectorizer.fit_transform(words["train"])}
    text.update({s: vectorizer.transform(words[s]) for s in ("dev", "test")})
    image = {}
    for s in SPLITS:
        ids, X = image_features(run, s, genres, params)
        row_of = {movie_id: r for r, movie_id in enumerate(ids)}
        image[s] = X[[row_of[i] for i in sample[s]]]  # the sample's rows, in its order
    scaler = StandardScaler().fit(image["train"])
    image = {s: scaler.transform(x) / np.sqrt(x.shape[1]) for s, x in image.items()}  # rows ~unit length
    both = {s: sparse.hstack([sparse.csr_matrix(image[s]), text[s]]).tocsr() for s in SPLITS}
    scores = {}
    for name, block in (("text", text), ("image", image), ("image + text", both)):
        dev, test = logistic_scores(block["train"], Y["train"], [block["dev"], block["test"]])
        scores[name] = (dev, test)
    return Y, scores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="a working copy with the run's outputs")
    parser.add_argument("--posters", type=Path, required=True, help="the source's poster folder")
    parser.add_argument("--name", default="movielens")
    parser.add_argument("--train", type=int, default=3000, help="training posters read (a seeded sample)")
    parser.add_argument("--jobs", type=int, default=1, help="tesseract processes at once")
    parser.add_argument("--ocr-only", action="store_true", help="read the posters, fit nothing")
    parser.add_argument("--out", type=Path, help="the report (default reports/<name>-ocr.md)")
    args = parser.parse_args()
    if shutil.which("tesseract") is None:
        sys.exit("ocr_pilot: tesseract is not installed (apt-get install tesseract-ocr)")
    paths.use_data(args.run / "data")
    params = yaml.safe_load((args.run / "params.yaml").read_text(encoding="utf-8"))
    sample = sample_ids(args.train, params["split"]["seed"])
    posters = dataset.read_poster_paths(args.posters)
    every = [i for ids in sample.values() for i in ids]
    texts = ocr_all(every, posters, args.run / "data" / "ocr-pilot.jsonl", args.jobs)
    if args.ocr_only:
        return
    Y, scores = fit_and_score(args.run, sample, texts, params)
    failed = sum(1 for i in every if texts[i]["error"])
    reads = np.mean(
        [any(sum(c.isalpha() for c in w) >= LETTERS for w in texts[i]["text"].split()) for i in every]
    )
    prevalence = Y["train"].mean(axis=0)
    results = {}
    for at, split in enumerate(("dev", "test")):
        W = bootstrap.resample_counts(len(sample[split]), bootstrap.split_seed(sample[split]))
        once = np.ones((1, W.shape[1]))  # every poster once: the split's own value
        candidates = {"label frequency": np.broadcast_to(prevalence, Y[split].shape)}
        candidates.update({model: both_splits[at] for model, both_splits in scores.items()})
        reps = {m: bootstrap.replicates(Y[split], P, None, W) for m, P in candidates.items()}
        point = {m: bootstrap.replicates(Y[split], P, None, once) for m, P in candidates.items()}
        results[split] = (reps, point)

    lines = [
        f"# The poster's text on the {args.name} run: a pilot",
        "",
        "Written by `tools/ocr_pilot.py`: Debian's tesseract-ocr (`--psm 11`) on "
        f"{len(sample['train']):,} training posters (a sample seeded by `split.seed`), the "
        f"{len(sample['dev']):,} dev and the {len(sample['test']):,} test posters; "
        f"{reads:.0%} of them gave a word of {LETTERS} or more letters, {failed} failed. "
        "One logistic regression per genre (C=1, nothing tuned) on character 2-4-grams of the text "
        "(TF-IDF), on the image features as the run's head reads them, and on both side by side; "
        "95% bootstrap intervals, 1,000 resamples of each split.",
        "",
        "| features | dev mAP | dev macro ROC-AUC | test mAP | test macro ROC-AUC |",
        "|---|---|---|---|---|",
    ]
    for model in ["label frequency", *scores]:
        row = []
        for split in ("dev", "test"):
            reps, point = results[split]
            for metric in ("mAP", "macro_roc_auc"):
                row.append(cell(reps[model][metric], float(point[model][metric][0])))
        lines.append(f"| {model} | " + " | ".join(row) + " |")
    lines += ["", "Paired on the same resamples (difference, 95% interval, share of resamples higher):", ""]
    lines += ["| pair | split | mAP | macro ROC-AUC |", "|---|---|---|---|"]
    for a, b in (("text", "label frequency"), ("image + text", "image")):
        for split in ("dev", "test"):
            reps, point = results[split]
            cells = []
            for metric in ("mAP", "macro_roc_auc"):
                pair = bootstrap.paired(reps[a][metric], reps[b][metric])
                diff = float(point[a][metric][0] - point[b][metric][0])
                cells.append(
                    f"{diff:+.4f} [{pair.difference[0]:+.3f}, {pair.difference[1]:+.3f}] "
                    f"({pair.a_higher:.0%}; {bootstrap.verdict(pair.difference)})"
                )
            lines.append(f"| {a} against {b} | {split} | " + " | ".join(cells) + " |")
    dev_reps = results["dev"][0]
    helps = bootstrap.paired(dev_reps["image + text"]["mAP"], dev_reps["image"]["mAP"]).difference[0] > 0
    lines += [
        "",
        f"On dev the text beside the image features {'helps' if helps else 'does not help'} "
        "(the paired mAP interval " + ("excludes" if helps else "does not exclude") + " 0).",
    ]
    out = args.out or REPO / "reports" / f"{args.name}-ocr.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(out)


if __name__ == "__main__":
    sys.exit(main())

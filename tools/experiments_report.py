"""The experiments around a published run, as one report: seeds, another split, a learning curve
and the levers, each against the run itself (the baseline).

Run where the experiments ran (every one a `dvc exp run` on the same baseline commit, see
docs/results.md for the commands), after the baseline's outputs are checked out again:

    python tools/experiments_report.py --run /tmp/movielens-copy --name movielens

writes reports/<name>-experiments.md and docs/<name>/learning-curve.png. The numbers are the
headline files `dvc exp show` reads and, for the dev split the levers are judged on, each
experiment's git-tracked `metrics/details/<method>.json`. An experiment that named its stages
(`dvc exp run ... evaluate@custom`) re-ran those methods alone, so each section shows only the
methods its experiments ran.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from postergenre.apps import compare

REPO = Path(__file__).resolve().parents[1]
METRICS = ["mAP", "macro_roc_auc", "micro_f1", "macro_f1"]
LABELS = {
    "mAP": "mAP",
    "macro_roc_auc": "macro ROC-AUC",
    "micro_f1": "micro-F1 (op.)",
    "macro_f1": "macro-F1 (op.)",
}
SEEDED = ["head", "custom", "resnet34", "ensemble"]  # what the seed and split experiments ran
CURVE = ["head", "custom"]
# (param, the method it changes, the dev number that decides whether it is kept)
LEVERS = [
    ("feature_methods.head.noise", "head", ("scores", "mAP")),
    ("feature_methods.head.mixup", "head", ("scores", "mAP")),
    ("feature_methods.head.views_as_samples", "head", ("scores", "mAP")),
    # calibration leaves each genre's ranking, so mAP, as it is: the operating point decides
    ("ensemble.calibrate", "ensemble", ("decided", "macro_f1")),
]


def details(run: Path, exp: compare.Experiment, method: str) -> dict[str, Any]:
    """An experiment's details file for a method (git-tracked, so in its commit)."""
    rel = f"metrics/details/{method}.json"
    if exp.rev in (None, "workspace"):
        return json.loads((run / rel).read_text(encoding="utf-8"))
    shown = subprocess.run(["git", "show", f"{exp.rev}:{rel}"], cwd=run, capture_output=True, text=True)
    return json.loads(shown.stdout) if shown.returncode == 0 else {}


def cell(metrics: dict[str, Any], metric: str) -> str:
    value, ci = metrics.get(metric), metrics.get("ci95", {}).get(metric)
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.4f} [{ci['low']:.3f}, {ci['high']:.3f}]" if isinstance(ci, dict) else f"{value:.4f}"


def seeds_section(exps: list[compare.Experiment]) -> list[str]:
    found = compare.groups(exps, "seed")
    if not found:
        return []
    runs = list(found[0].values())
    lines = [
        "## Seeds",
        "",
        f"{len(runs)} training seeds ({', '.join(str(s) for s in found[0])}), the split held fixed "
        "(`split.seed`). Mean ± sample sd over the seeds; in brackets, the sd the bootstrap interval "
        "implies (its mean width / 3.92); **bold** where the seeds spread more than that.",
        "",
        "| method | " + " | ".join(LABELS[m] for m in METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for method in SEEDED:
        row = []
        for metric in METRICS:
            values = [e.metrics.get(method, {}).get(metric) for e in runs]
            values = [v for v in values if isinstance(v, int | float)]
            if len(values) < 2:
                row.append("-")
                continue
            widths = [
                c["high"] - c["low"] for e in runs if (c := e.metrics[method].get("ci95", {}).get(metric))
            ]
            sd = statistics.stdev(values)
            text = f"{statistics.mean(values):.4f} ± {sd:.4f}"
            if widths:
                boot = statistics.mean(widths) / compare._WIDTH_PER_SD
                text = f"**{text} ({boot:.4f})**" if sd > boot else f"{text} ({boot:.4f})"
            row.append(text)
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return [*lines, ""]


def split_section(exps: list[compare.Experiment], baseline: compare.Experiment) -> list[str]:
    found = [g for g in compare.groups(exps, "split.seed") if baseline.params.get("split.seed") in g]
    if not found:
        return []
    others = [e for s, e in found[0].items() if s != baseline.params.get("split.seed")]
    lines = [
        "## Another split",
        "",
        "The same settings on another split (`split.seed` "
        f"{', '.join(str(e.params['split.seed']) for e in others)} "
        f"against {baseline.params['split.seed']}): other test posters, so their intervals are "
        "their own; the difference is how much the choice of split moves a number.",
        "",
        "| method | metric | this split | other split | difference |",
        "|---|---|---|---|---|",
    ]
    for method in SEEDED:
        for metric in ("mAP", "macro_roc_auc"):
            a = baseline.metrics.get(method, {})
            for other in others:
                b = other.metrics.get(method, {})
                if isinstance(a.get(metric), float) and isinstance(b.get(metric), float):
                    lines.append(
                        f"| {method} | {LABELS[metric]} | {cell(a, metric)} | {cell(b, metric)} | "
                        f"{b[metric] - a[metric]:+.4f} |"
                    )
    return [*lines, ""]


def curve_section(exps: list[compare.Experiment], name: str, pictures: Path) -> list[str]:
    found = compare.groups(exps, "split.max_train")
    if not found:
        return []
    runs = sorted(found[0].values(), key=lambda e: compare._x(e, "split.max_train"))
    png = pictures / "learning-curve.png"
    compare.curve_png(png, exps, ["mAP", "macro_roc_auc"], "split.max_train", CURVE)
    full = compare._x(runs[-1], "split.max_train")
    lines = [
        "## Learning curve",
        "",
        "Head and custom CNN trained on a stratified share of the training split (`split.max_train`), "
        "dev and test unchanged; test numbers with their 95% intervals.",
        "",
        f"![test mAP and macro ROC-AUC against training posters](../docs/{name}/{png.name})",
        "",
        "| method | training posters | share | mAP | macro ROC-AUC |",
        "|---|---|---|---|---|",
    ]
    for method in CURVE:
        for e in runs:
            n = compare._x(e, "split.max_train")
            m = e.metrics.get(method, {})
            lines.append(
                f"| {method} | {n} | {n / full:.0%} | {cell(m, 'mAP')} | {cell(m, 'macro_roc_auc')} |"
            )
    return [*lines, ""]


def _dev(d: dict[str, Any], where: tuple[str, str]) -> float | None:
    value = d.get("dev", {}).get(where[0], {}).get(where[1])
    return value if isinstance(value, int | float) else None


def levers_section(run: Path, exps: list[compare.Experiment], baseline: compare.Experiment) -> list[str]:
    lines = [
        "## Levers",
        "",
        "Each lever alone on top of the run, judged on the dev split (by its mAP; the calibration, "
        "which keeps every genre's ranking, by the operating point's macro-F1) and reported on test "
        "with its interval. Kept: better on dev than the run without it.",
        "",
        "| lever | method | dev (decides) | test mAP | test macro ROC-AUC | test micro-F1 (op.) "
        "| test macro-F1 (op.) | kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    found = False
    for param, method, where in LEVERS:
        base_dev = _dev(details(run, baseline, method), where)
        base = baseline.metrics.get(method, {})
        tried = [
            e
            for e in exps
            if e.params.get(param) != baseline.params.get(param)
            and all(e.params.get(k) == v for k, v in baseline.params.items() if k != param)
        ]
        for e in tried:
            if not found:
                lines.append(
                    f"| (none) | {method} | {base_dev:.4f} | {cell(base, 'mAP')} | "
                    f"{cell(base, 'macro_roc_auc')} | {cell(base, 'micro_f1')} | {cell(base, 'macro_f1')} | |"
                    if base_dev is not None
                    else f"| (none) | {method} | - | {cell(base, 'mAP')} | | | | |"
                )
            found = True
            dev = _dev(details(run, e, method), where)
            m = e.metrics.get(method, {})
            kept = "yes" if dev is not None and base_dev is not None and dev > base_dev else "no"
            short = param.removeprefix("feature_methods.")
            lines.append(
                f"| `{short}={e.params.get(param)}` | {method} | "
                f"{'-' if dev is None else f'{dev:.4f}'} ({where[0]} {where[1]}) | {cell(m, 'mAP')} | "
                f"{cell(m, 'macro_roc_auc')} | {cell(m, 'micro_f1')} | {cell(m, 'macro_f1')} | {kept} |"
            )
    return [*lines, ""] if found else []


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="the working copy the experiments ran in")
    parser.add_argument("--name", required=True, help="e.g. movielens")
    args = parser.parse_args()
    exps = compare.experiments(compare.dvc_exp_show([], cwd=args.run))
    baseline = next(e for e in exps if e.rev == "workspace")
    pictures = REPO / "docs" / args.name
    pictures.mkdir(parents=True, exist_ok=True)
    text = [
        f"# Experiments around the {args.name} run",
        "",
        "Written by `tools/experiments_report.py` from the run's experiments (`dvc exp show`); "
        "the run itself is [its report](" + f"{args.name}.md).",
        "",
        *seeds_section(exps),
        *split_section(exps, baseline),
        *curve_section(exps, args.name, pictures),
        *levers_section(args.run, exps, baseline),
    ]
    out = REPO / "reports" / f"{args.name}-experiments.md"
    out.write_text("\n".join(text).rstrip() + "\n", encoding="utf-8")
    print(out.relative_to(REPO))


if __name__ == "__main__":
    sys.exit(main())

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

What the report is made from is kept beside it, reports/<name>-experiments.json (each
experiment's params, headline metrics and the dev numbers the levers are judged on). A later
run of the tool adds its experiments to those (an experiment of the same name replaces the
kept one), so experiments run in another copy at another time join the report. They join the
kept run whose baseline has the same params and headline metrics; a baseline that differs (the
networks' numbers move between machines) starts a run of its own, reported under its own heading,
each experiment against its own baseline (`--fresh` starts the record again).
"""

from __future__ import annotations

import argparse
import json
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
CURVE_METRICS = ["mAP", "macro_roc_auc"]
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
        path = run / rel
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    shown = subprocess.run(["git", "show", f"{exp.rev}:{rel}"], cwd=run, capture_output=True, text=True)
    return json.loads(shown.stdout) if shown.returncode == 0 else {}


def dev_numbers(run: Path, exp: compare.Experiment) -> dict[str, dict[str, dict[str, float]]]:
    """The dev numbers the levers are judged on, method -> part -> metric, from the details files."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for _, method, (part, metric) in LEVERS:
        value = _dev(details(run, exp, method), (part, metric))
        if value is not None:
            out.setdefault(method, {}).setdefault(part, {})[metric] = value
    return out


def _entry(e: compare.Experiment, dev: dict[str, Any]) -> dict[str, Any]:
    return {"name": e.name, "params": e.params, "metrics": e.metrics, "dev": dev}


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def record(run: Path, exps: list[compare.Experiment], kept: dict[str, Any] | None) -> dict[str, Any]:
    """`kept` (the record of earlier runs of this tool) with this working copy's baseline (the
    workspace) and every experiment that differs from it: merged into the kept run whose baseline
    has the same params and metrics (an experiment of the same name replaced), else a run of its
    own (another machine gives the networks other numbers, so other experiments' baseline)."""
    baseline = next(e for e in exps if e.rev == "workspace")
    base = _entry(baseline, dev_numbers(run, baseline))
    entries = {
        e.name: _entry(e, dev_numbers(run, e))
        for e in exps
        if e.rev != "workspace" and e.params != baseline.params  # the commit itself adds nothing
    }
    runs = [dict(r) for r in (kept or {}).get("runs", [])]
    for r in runs:
        old = r["baseline"]
        if _same(old["params"], base["params"]) and _same(old["metrics"], base["metrics"]):
            r["experiments"] = list({**{e["name"]: e for e in r["experiments"]}, **entries}.values())
            return {"runs": runs}
    changed = [
        key
        for r in runs[-1:]
        for key in sorted(set(r["baseline"]["metrics"]) | set(base["metrics"]))
        if not _same(r["baseline"]["metrics"].get(key), base["metrics"].get(key))
    ]
    if changed:
        print(f"experiments_report: a baseline of its own (its metrics differ in {', '.join(changed)})")
    return {"runs": [*runs, {"baseline": base, "experiments": list(entries.values())}]}


def from_record(kept_run: dict[str, Any]) -> tuple[list[compare.Experiment], dict[str, Any]]:
    """A kept run's experiments (the baseline first, as the workspace) and each one's dev numbers
    by name."""
    exps, dev = [], {}
    for i, entry in enumerate([kept_run["baseline"], *kept_run["experiments"]]):
        exps.append(
            compare.Experiment(
                entry["name"], entry["params"], entry["metrics"], "workspace" if i == 0 else entry["name"]
            )
        )
        dev[entry["name"]] = entry["dev"]
    return exps, dev


def report_lines(kept: dict[str, Any], name: str, pictures: Path) -> list[str]:
    """Every section for each kept run; with more than one run, each under a heading of its own
    that gives its baseline's numbers."""
    lines: list[str] = []
    runs = kept["runs"]
    curves = 0
    for i, kept_run in enumerate(runs, start=1):
        exps, dev = from_record(kept_run)
        baseline = exps[0]
        png = "learning-curve.png" if curves == 0 else f"learning-curve-{curves + 1}.png"
        curve = curve_section(exps, name, pictures, png)
        curves += bool(curve)
        sections = [
            *seeds_section(exps),
            *split_section(exps, baseline),
            *curve,
            *levers_section(exps, baseline, dev),
        ]
        if len(runs) > 1:
            numbers = ", ".join(
                f"{m} {baseline.metrics[m]['mAP']:.4f}"
                for m in SEEDED
                if isinstance(baseline.metrics.get(m, {}).get("mAP"), float)
            )
            sections = [
                f"## Around run {i} of {len(runs)}",
                "",
                f"Its baseline's test mAP: {numbers}.",
                "",
                *(f"#{line}" if line.startswith("## ") else line for line in sections),
            ]
        lines += sections
    return lines


def seeds_section(exps: list[compare.Experiment]) -> list[str]:
    found = compare.groups(exps, "seed")
    if not found:
        return []
    runs = list(found[0].values())
    lines = [
        "## Seeds",
        "",
        f"{len(runs)} training seeds ({', '.join(str(s) for s in sorted(found[0]))}), the split held fixed "
        "(`split.seed`). Mean ± sample sd over the seeds; in brackets, the sd the bootstrap interval "
        "implies (its mean width / 3.92); **bold** where the seeds spread more than that.",
        "",
        "| method | " + " | ".join(LABELS[m] for m in METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for method in SEEDED:
        row = []
        for metric in METRICS:
            sp = compare.spread(runs, method, metric)
            if sp is None or sp.n < 2:
                row.append("-")
                continue
            text = f"{sp.mean:.4f} ± {sp.sd:.4f}"
            if sp.boot_sd is not None:
                text = f"{text} ({sp.boot_sd:.4f})"
            row.append(f"**{text}**" if sp.wider_than_bootstrap else text)
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
            a = baseline.metrics.get(method, {}).get(metric)
            for other in others:
                b = other.metrics.get(method, {}).get(metric)
                if isinstance(a, float) and isinstance(b, float):
                    lines.append(
                        f"| {method} | {LABELS[metric]} | {compare.shown_cell(baseline, method, metric)} | "
                        f"{compare.shown_cell(other, method, metric)} | {b - a:+.4f} |"
                    )
    return [*lines, ""]


def curve_section(
    exps: list[compare.Experiment], name: str, pictures: Path, png_name: str = "learning-curve.png"
) -> list[str]:
    found = compare.groups(exps, "split.max_train")
    if not found:
        return []
    runs = compare.along(found[0], "split.max_train")
    png = pictures / png_name
    compare.curve_png(png, exps, CURVE_METRICS, "split.max_train", CURVE)
    full = {m: compare.position(runs[-1], "split.max_train", m) for m in CURVE}
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
            n = compare.position(e, "split.max_train", method)
            cells = test_cells(e, method, CURVE_METRICS)
            lines.append(f"| {method} | {n:,} | {n / full[method]:.0%} | {cells} |")
    return [*lines, ""]


def test_cells(e: compare.Experiment, method: str, metrics: list[str] = METRICS) -> str:
    """A method's test numbers with their intervals, as table cells."""
    return " | ".join(compare.shown_cell(e, method, metric) for metric in metrics)


def _dev(d: dict[str, Any], where: tuple[str, str]) -> float | None:
    """A dev number from a details file's `dev` part, or from a record's (method -> part)."""
    value = d.get("dev", d).get(where[0], {}).get(where[1])
    return value if isinstance(value, int | float) else None


def levers_section(
    exps: list[compare.Experiment], baseline: compare.Experiment, dev: dict[str, Any]
) -> list[str]:
    """Each lever alone against the baseline; `dev`: each experiment's dev numbers, by name."""
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
    based: set[str] = set()  # methods whose row without a lever is written
    for param, method, where in LEVERS:
        base_dev = _dev(dev[baseline.name].get(method, {}), where)
        tried = [
            e
            for e in exps
            if e.params.get(param) != baseline.params.get(param)
            and all(e.params.get(k) == v for k, v in baseline.params.items() if k != param)
        ]
        for e in tried:
            if method not in based:
                dev_text = "-" if base_dev is None else f"{base_dev:.4f}"
                lines.append(f"| (none) | {method} | {dev_text} | {test_cells(baseline, method)} | |")
                based.add(method)
            value = _dev(dev[e.name].get(method, {}), where)
            kept = "yes" if value is not None and base_dev is not None and value > base_dev else "no"
            short = param.removeprefix("feature_methods.")
            lines.append(
                f"| `{short}={e.params.get(param)}` | {method} | "
                f"{'-' if value is None else f'{value:.4f}'} ({where[0]} {where[1]}) | "
                f"{test_cells(e, method)} | {kept} |"
            )
    return [*lines, ""] if based else []


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="the working copy the experiments ran in")
    parser.add_argument("--name", required=True, help="e.g. movielens")
    parser.add_argument("--fresh", action="store_true", help="start the record again (drop its experiments)")
    args = parser.parse_args()
    kept_path = REPO / "reports" / f"{args.name}-experiments.json"
    kept = (
        None if args.fresh or not kept_path.is_file() else json.loads(kept_path.read_text(encoding="utf-8"))
    )
    kept = record(args.run, compare.experiments(compare.dvc_exp_show([], cwd=args.run)), kept)
    kept_path.write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    pictures = REPO / "docs" / args.name
    pictures.mkdir(parents=True, exist_ok=True)
    text = [
        f"# Experiments around the {args.name} run",
        "",
        "Written by `tools/experiments_report.py` from the run's experiments (`dvc exp show`), kept in "
        f"`{kept_path.name}`; the run itself is [its report]({args.name}.md).",
        "",
        *report_lines(kept, args.name, pictures),
    ]
    out = REPO / "reports" / f"{args.name}-experiments.md"
    out.write_text("\n".join(text).rstrip() + "\n", encoding="utf-8")
    print(out.relative_to(REPO))


if __name__ == "__main__":
    sys.exit(main())

"""compare: experiments side by side, one small table per headline metric (`make compare`).

`dvc exp show` gives every method's headline file a group of columns; with seven methods that
is wider than a screen. This reads the same data (`dvc exp show --json`) and prints, first, each
experiment with the params that differ between them, then one table per metric: a row per
method, a column per experiment, each number with its 95% bootstrap interval. Pass `dvc exp show`
options after `--` (`-A`, `-n 3`, ...).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from postergenre.runtime import entry
from postergenre.runtime.tracking import flatten

DEFAULT_METRICS = ["mAP", "macro_roc_auc", "micro_f1", "macro_f1"]
NAME_WIDTH = 22


@dataclass
class Experiment:
    name: str
    params: dict[str, Any] = field(default_factory=dict)  # flat: "data.source" -> value
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> key -> value


def _experiment(state: dict[str, Any], name: str) -> Experiment | None:
    data = state.get("data") or {}
    if not data:
        return None
    params: dict[str, Any] = {}
    for file in (data.get("params") or {}).values():
        params.update(flatten((file or {}).get("data") or {}))
    metrics: dict[str, dict[str, Any]] = {}
    for path, file in (data.get("metrics") or {}).items():
        p = PurePosixPath(path)
        if p.parent.as_posix() == "metrics" and p.suffix == ".json":
            metrics[p.stem] = (file or {}).get("data") or {}
    return Experiment(name, params, metrics)


def experiments(show_json: list[dict[str, Any]]) -> list[Experiment]:
    """The workspace, each commit shown and its experiments, from `dvc exp show --json`."""
    out = []
    for state in show_json:
        rev = str(state.get("rev", "?"))
        exp = _experiment(state, state.get("name") or (rev if rev == "workspace" else rev[:7]))
        if exp:
            out.append(exp)
        for group in state.get("experiments") or []:
            for rev in group.get("revs") or []:
                exp = _experiment(rev, group.get("name") or rev.get("name") or str(rev.get("rev", "?"))[:7])
                if exp:
                    out.append(exp)
    return out


def _cell(value: Any, ci: Any = None) -> str:
    """A number to 4 places, with its 95% bootstrap interval where the metrics file has one."""
    if value is None:
        return "-"
    text = f"{value:.4f}" if isinstance(value, float) else str(value)
    if isinstance(ci, dict) and {"low", "high"} <= ci.keys():
        text += f" [{ci['low']:.3f}, {ci['high']:.3f}]"
    return text


def table(exps: list[Experiment], metrics: list[str]) -> str:
    """The legend of differing params, then one table per metric: a row per method, a column
    per experiment (a number and its interval is 21 characters: three experiments fit in 100)."""
    if not exps:
        return "no experiments (run `dvc repro` or `dvc exp run` first)"
    keys = sorted({k for e in exps for k in e.params})
    differ = [k for k in keys if len({json.dumps(e.params.get(k), default=str) for e in exps}) > 1]
    lines = ["params that differ: " + (", ".join(differ) if differ else "none")]
    for e in exps:
        settings = "  ".join(f"{k}={e.params.get(k)}" for k in differ)
        lines.append(f"  {e.name[:NAME_WIDTH]:{NAME_WIDTH}s}  {settings}".rstrip())
    methods = list(dict.fromkeys(m for e in exps for m in e.metrics))
    for metric in metrics:
        columns = [
            [
                _cell(e.metrics.get(m, {}).get(metric), e.metrics.get(m, {}).get("ci95", {}).get(metric))
                for m in methods
            ]
            for e in exps
        ]
        widths = [max([len(e.name[:NAME_WIDTH]), *map(len, c)]) for e, c in zip(exps, columns, strict=True)]
        lines += [
            "",
            f"{metric[:NAME_WIDTH]:{NAME_WIDTH}s}  "
            + "  ".join(f"{e.name[:NAME_WIDTH]:>{w}s}" for e, w in zip(exps, widths, strict=True)),
        ]
        for i, m in enumerate(methods):
            lines.append(
                f"{m[:NAME_WIDTH]:{NAME_WIDTH}s}  "
                + "  ".join(f"{c[i]:>{w}s}" for c, w in zip(columns, widths, strict=True))
            )
    return "\n".join(lines)


def seed_table(exps: list[Experiment], metrics: list[str]) -> str:
    """Experiments that differ in `seed` alone (the training's; the split has its own), one
    group per setting of every other param: per method and metric the mean and the sample sd
    over the group's seeds (one experiment per seed: the workspace and its commit count once)."""
    groups: dict[str, dict[Any, Experiment]] = {}
    for e in exps:
        key = json.dumps({k: v for k, v in e.params.items() if k != "seed"}, sort_keys=True, default=str)
        groups.setdefault(key, {}).setdefault(e.params.get("seed"), e)
    lines: list[str] = []
    for by_seed in groups.values():
        if len(by_seed) < 2:
            continue
        runs = list(by_seed.values())
        seeds = ", ".join(str(s) for s in by_seed)
        lines += [
            *([""] if lines else []),
            f"{len(runs)} seeds ({seeds}): " + ", ".join(e.name for e in runs),
        ]
        methods = list(dict.fromkeys(m for e in runs for m in e.metrics))
        for metric in metrics:
            lines += ["", f"{metric[:NAME_WIDTH]:{NAME_WIDTH}s}  {'mean ± sd':>17s}  seeds"]
            for m in methods:
                values = [v for e in runs if isinstance(v := e.metrics.get(m, {}).get(metric), int | float)]
                if not values:
                    continue
                mean, sd = statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
                lines.append(f"{m[:NAME_WIDTH]:{NAME_WIDTH}s}  {mean:8.4f} ± {sd:.4f}  {len(values):5d}")
    if not lines:
        return "no experiments that differ in `seed` alone (run `dvc exp run --queue -S seed=1,2,3`)"
    return "\n".join(lines)


def dvc_exp_show(extra: list[str]) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise ValueError(f"dvc exp show failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from postergenre.pipeline.evaluate import HEADLINE

    parser.add_argument(
        "--metric",
        action="append",
        choices=list(HEADLINE),
        default=None,
        help=f"a headline metric to show, repeatable (default: {', '.join(DEFAULT_METRICS)})",
    )
    parser.add_argument(
        "--seeds",
        action="store_true",
        help="mean ± sd over experiments that differ in `seed` alone, per method and metric",
    )
    parser.add_argument(
        "dvc_args", nargs="*", metavar="-- DVC_ARGS", help="passed to `dvc exp show` (e.g. -- -A, -- -n 3)"
    )


NEEDS_PARAMS = False


def run(args: argparse.Namespace, params: dict | None) -> None:
    exps = experiments(dvc_exp_show(args.dvc_args))
    print((seed_table if args.seeds else table)(exps, args.metric or DEFAULT_METRICS))


if __name__ == "__main__":
    sys.exit(entry.main("compare", __doc__, add_arguments, run, needs_params=False))

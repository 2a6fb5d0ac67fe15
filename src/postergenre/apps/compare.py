"""compare: experiments side by side, one small table per headline metric (`make compare`).

`dvc exp show` gives every method's headline file a group of columns; with seven methods that
is wider than a screen. This reads the same data (`dvc exp show --json`) and prints, first, each
experiment with the params that differ between them, then one table per metric: a row per
method, a column per experiment, each number with its 95% bootstrap interval. Pass `dvc exp show`
options after `--` (`-A`, `-n 3`, ...).

`--seeds`: mean ± sd over experiments that differ in the training's seed alone. `--curve PARAM`:
the numbers along experiments that differ in PARAM alone (`--curve split.max_train`, a learning
curve over the training posters), `--plot PATH` drawing it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
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
    rev: str | None = None  # the commit, or "workspace"


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
    return Experiment(name, params, metrics, str(state.get("rev", "")) or None)


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


def interval(e: Experiment, method: str, metric: str) -> Any:
    """The experiment's 95% interval of a method's metric ({"low", "high"}), or None."""
    return e.metrics.get(method, {}).get("ci95", {}).get(metric)


def shown_cell(e: Experiment, method: str, metric: str) -> str:
    return _cell(e.metrics.get(method, {}).get(metric), interval(e, method, metric))


def methods_of(exps: list[Experiment]) -> list[str]:
    """Every method with a headline file in any of the experiments, in the order first seen."""
    return list(dict.fromkeys(m for e in exps for m in e.metrics))


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
    methods = methods_of(exps)
    for metric in metrics:
        columns = [[shown_cell(e, m, metric) for m in methods] for e in exps]
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


def groups(exps: list[Experiment], vary: str) -> list[dict[Any, Experiment]]:
    """Experiments that differ in the param `vary` alone: one group per setting of every other
    param, one experiment per value of `vary` (the workspace and its commit count once), groups
    of two or more values only, in the order first seen."""
    found: dict[str, dict[Any, Experiment]] = {}
    for e in exps:
        key = json.dumps({k: v for k, v in e.params.items() if k != vary}, sort_keys=True, default=str)
        found.setdefault(key, {}).setdefault(json.dumps(e.params.get(vary), default=str), e)
    return [{e.params.get(vary): e for e in g.values()} for g in found.values() if len(g) > 1]


# a percentile 95% interval of a normal spread is 2 x 1.96 of its sd wide
WIDTH_PER_SD = 2 * statistics.NormalDist().inv_cdf(0.975)


@dataclass
class Spread:
    mean: float
    sd: float  # the sample sd over the runs (0 for one)
    n: int
    boot_sd: float | None  # the sd the runs' mean bootstrap interval width implies, if they have one

    @property
    def wider_than_bootstrap(self) -> bool:
        return self.boot_sd is not None and self.sd > self.boot_sd


def spread(runs: list[Experiment], method: str, metric: str) -> Spread | None:
    """A method's metric over runs (seeds): mean, sd, and the sd its intervals imply."""
    values = [v for e in runs if isinstance(v := e.metrics.get(method, {}).get(metric), int | float)]
    if not values:
        return None
    widths = [ci["high"] - ci["low"] for e in runs if isinstance(ci := interval(e, method, metric), dict)]
    return Spread(
        statistics.mean(values),
        statistics.stdev(values) if len(values) > 1 else 0.0,
        len(values),
        statistics.mean(widths) / WIDTH_PER_SD if widths else None,
    )


def seed_table(exps: list[Experiment], metrics: list[str]) -> str:
    """Experiments that differ in `seed` alone (the training's; the split has its own): per
    method and metric the mean and the sample sd over the group's seeds, beside the sd the
    bootstrap's interval implies (its mean width / 3.92), marked `*` where the seeds spread more
    than the test posters' resampling does."""
    lines: list[str] = []
    for by_seed in groups(exps, "seed"):
        runs = list(by_seed.values())
        seeds = ", ".join(str(s) for s in by_seed)
        lines += [
            *([""] if lines else []),
            f"{len(runs)} seeds ({seeds}): " + ", ".join(e.name for e in runs),
        ]
        marked = False
        for metric in metrics:
            lines += ["", f"{metric[:NAME_WIDTH]:{NAME_WIDTH}s}  {'mean ± sd':>17s}  seeds  boot. sd"]
            for m in methods_of(runs):
                if (sp := spread(runs, m, metric)) is None:
                    continue
                row = f"{m[:NAME_WIDTH]:{NAME_WIDTH}s}  {sp.mean:8.4f} ± {sp.sd:.4f}  {sp.n:5d}"
                if sp.boot_sd is not None:
                    row += f"  {sp.boot_sd:8.4f}" + (" *" if sp.wider_than_bootstrap else "")
                marked |= sp.wider_than_bootstrap
                lines.append(row)
        if marked:
            lines += ["", "* the seeds spread more than the bootstrap interval implies"]
    if not lines:
        return "no experiments that differ in `seed` alone (run `dvc exp run --queue -S seed=1,2,3`)"
    return "\n".join(lines)


def position(e: Experiment, param: str, method: str | None = None) -> Any:
    """Where an experiment sits on a curve over `param`: for the split's caps, the training
    posters its headline file records (`method`'s, else the fewest of any method: an experiment
    that re-ran some methods on a capped split keeps the others' files from the full one), else
    the param's value."""
    if param.startswith("split."):
        counts = [
            n for m, v in e.metrics.items() if method in (None, m) and isinstance(n := v.get("n_train"), int)
        ]
        if counts:
            return min(counts)
    return e.params.get(param)


def along(group: dict[Any, Experiment], param: str) -> list[Experiment]:
    """A group's experiments in order along `param` (by `position`)."""
    return sorted(group.values(), key=lambda e: position(e, param))


def curve_table(exps: list[Experiment], metrics: list[str], param: str, methods: list[str] | None) -> str:
    """Experiments that differ in `param` alone, in order along it: per metric a row per method,
    a column per value, each number with its interval (a learning curve over `split.max_train`
    is over the training posters)."""
    lines: list[str] = []
    for group in groups(exps, param):
        runs = along(group, param)
        shown = methods or methods_of(runs)
        xs = [str(position(e, param)) for e in runs]
        what = "training posters" if param.startswith("split.") else param
        lines += [
            *([""] if lines else []),
            f"{param}: " + ", ".join(f"{e.name}={e.params.get(param)}" for e in runs),
        ]
        for metric in metrics:
            cells = [[shown_cell(e, m, metric) for e in runs] for m in shown]
            widths = [max([len(x), *(len(row[i]) for row in cells)]) for i, x in enumerate(xs)]
            lines += [
                "",
                f"{metric} by {what}",
                " " * NAME_WIDTH + "  " + "  ".join(f"{x:>{w}s}" for x, w in zip(xs, widths, strict=True)),
            ]
            for m, row in zip(shown, cells, strict=True):
                lines.append(
                    f"{m[:NAME_WIDTH]:{NAME_WIDTH}s}  "
                    + "  ".join(f"{c:>{w}s}" for c, w in zip(row, widths, strict=True))
                )
    if not lines:
        return (
            f"no experiments that differ in `{param}` alone (run `dvc exp run -S {param}=...` for each value)"
        )
    return "\n".join(lines)


def curve_png(
    path: Path, exps: list[Experiment], metrics: list[str], param: str, methods: list[str] | None
) -> None:
    """The first group's curve as a PNG: a panel per metric, a line per method through its
    values, the bootstrap interval as a band."""
    from postergenre.core import figures

    found = groups(exps, param)
    if not found:
        raise ValueError(f"no experiments that differ in `{param}` alone: nothing to draw")
    runs = along(found[0], param)
    shown = methods or methods_of(runs)
    plt = figures._pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for i, m in enumerate(shown):
            pts = [
                (position(e, param, m), v, interval(e, m, metric))
                for e in runs
                if isinstance(v := e.metrics.get(m, {}).get(metric), int | float)
            ]
            if not pts:
                continue
            x, y, ci = zip(*pts, strict=True)
            ax.plot(x, y, marker="o", markersize=4, color=f"C{i}", label=m)
            if all(isinstance(c, dict) for c in ci):
                ax.fill_between(x, [c["low"] for c in ci], [c["high"] for c in ci], color=f"C{i}", alpha=0.18)
        ax.set(
            xlabel="training posters" if param.startswith("split.") else param,
            ylabel=metric,
            title=f"test {metric} (95% interval)",
        )
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    figures._save(fig, path)


def dvc_exp_show(extra: list[str], cwd: Path | None = None) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
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
        "--curve",
        metavar="PARAM",
        default=None,
        help="a row per value of PARAM over experiments that differ in it alone (a learning "
        "curve: split.max_train)",
    )
    parser.add_argument(
        "--method", action="append", default=None, help="with --curve: only this method, repeatable"
    )
    parser.add_argument("--plot", type=Path, default=None, help="with --curve: also draw it as a PNG here")
    parser.add_argument(
        "dvc_args", nargs="*", metavar="-- DVC_ARGS", help="passed to `dvc exp show` (e.g. -- -A, -- -n 3)"
    )


NEEDS_PARAMS = False


def run(args: argparse.Namespace, params: dict | None) -> None:
    exps = experiments(dvc_exp_show(args.dvc_args))
    metrics = args.metric or DEFAULT_METRICS
    if args.plot is not None and args.curve is None:
        raise ValueError("--plot draws a curve: give --curve PARAM too")
    if args.curve:
        print(curve_table(exps, metrics, args.curve, args.method))
        if args.plot is not None:
            curve_png(args.plot, exps, args.metric or ["mAP", "macro_roc_auc"], args.curve, args.method)
            print(f"wrote {args.plot}")
    else:
        print((seed_table if args.seeds else table)(exps, metrics))


if __name__ == "__main__":
    sys.exit(entry.main("compare", __doc__, add_arguments, run, needs_params=False))

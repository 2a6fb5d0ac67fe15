"""Benchmark: the whole default pipeline on synthetic posters at several sizes, stage by stage.

For each n, a scratch copy of this repository (its dvc.yaml, params and code) with
`data.synthetic.n = n`, every stage run in dvc.yaml's order as its own `dvc repro -s`, each
under GNU time: its wall time and the peak memory of its largest process. Then, per stage, the
growth exponent (the slope of log time against log n, least squares over the sizes), and a PNG
of time and memory against n. Prints a markdown table.

    python bench/scale.py --sizes 2000 8000 35000 [--out bench-scale] [--keep] [--previous FILE]

scale.json is rewritten after every size, so a long run stopped part way keeps the sizes it
finished; `--previous` adds the sizes of an earlier run's scale.json to the table (those not
measured again), and `--sizes --previous FILE` (no sizes) only redraws its table and PNG. The
table's growth columns: the slope over every size, and over the two largest alone.

The study trained on 28,000 posters (35,000 after cleaning); 2 cores took 28 minutes at that size.
Nothing here is asserted: the table is the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TIME = "/usr/bin/time"


def sh(args, cwd, preexec_fn=None, **env) -> subprocess.CompletedProcess:
    full = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "CI": "1",
        "PYTHONPATH": str(Path(cwd) / "src"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{Path(cwd) / 'mlflow.db'}",
        **env,
    }
    out = subprocess.run(args, cwd=cwd, env=full, capture_output=True, text=True, preexec_fn=preexec_fn)
    if out.returncode:
        raise SystemExit(f"{args} failed in {cwd}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def scratch(root: Path, n: int) -> Path:
    """A git + DVC repository holding this one's pipeline, at n synthetic posters."""
    root.mkdir(parents=True)
    for name in ("dvc.yaml", ".dvcignore", "pyproject.toml", ".gitignore", "requirements.lock"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["synthetic"]["n"] = n
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q"], root)
    sh(
        [
            "git",
            "-c",
            "user.email=b@example.com",
            "-c",
            "user.name=bench",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "empty",
        ],
        root,
    )
    sh(["dvc", "init", "-q"], root)
    sh(["dvc", "config", "core.analytics", "false"], root)
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")
    return root


def stages(root: Path) -> list[str]:
    """Every stage, in the order dvc.yaml writes them (top to bottom is upstream first)."""
    out = sh(["dvc", "stage", "list", "--name-only"], root).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def run_stage(root: Path, stage: str, force: bool = False, preexec_fn=None) -> tuple[float, float]:
    """(seconds, peak MB of the largest process) of one stage run alone (`force`: even if cached;
    `preexec_fn`: called in the child before dvc starts)."""
    report = root / ".time"
    started = time.perf_counter()
    repro = ["dvc", "repro", "-s", *(["-f"] if force else []), stage]
    sh([TIME, "-f", "%M", "-o", str(report), *repro], root, preexec_fn=preexec_fn)
    seconds = time.perf_counter() - started
    return seconds, int(report.read_text().split()[-1]) / 1024


def growth(ns: list[int], values: list[float]) -> float | None:
    """The least-squares slope of log value against log n; None below two sizes."""
    if len(ns) < 2 or min(values) <= 0:
        return None
    return float(np.polyfit(np.log(ns), np.log(values), 1)[0])


def figure(path: Path, ns: list[int], table: dict[str, dict[int, tuple[float, float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 5))
    heavy = sorted(table, key=lambda s: -max(t for t, _ in table[s].values()))[:10]
    for stage in heavy:
        ax_t.plot(ns, [table[stage][n][0] for n in ns], marker="o", label=stage)
        ax_m.plot(ns, [table[stage][n][1] / 1024 for n in ns], marker="o", label=stage)
    for ax, what in ((ax_t, "wall time (s)"), (ax_m, "peak memory of its largest process (GB)")):
        ax.set(xscale="log", yscale="log", xlabel="synthetic posters", ylabel=what)
        ax.grid(alpha=0.3, which="both")
    ax_t.legend(fontsize=7)
    fig.suptitle("The default pipeline's ten slowest stages against the number of posters")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})


def write_json(path: Path, table: dict[str, dict[int, tuple[float, float]]]) -> None:
    """Every stage's seconds and peak MB per size, written whole (a temporary file renamed)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(
        json.dumps(
            {
                stage: {
                    str(n): {"seconds": round(t, 1), "peak_mb": round(m)} for n, (t, m) in sorted(row.items())
                }
                for stage, row in table.items()
            },
            indent=1,
        )
    )
    tmp.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[2000, 8000, 35000], help="none: only redraw --previous"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench-scale"), help="folder for scale.json, scale.md and scale.png"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch projects")
    parser.add_argument(
        "--previous",
        type=Path,
        default=None,
        help="an earlier run's scale.json, its other sizes added to the table",
    )
    args = parser.parse_args()
    if not Path(TIME).exists():
        print(f"{TIME} (GNU time) is needed: apt-get install time", file=sys.stderr)
        return 2
    table: dict[str, dict[int, tuple[float, float]]] = {}
    if args.previous:
        for stage, row in json.loads(args.previous.read_text()).items():
            for n, cell in row.items():
                if int(n) not in args.sizes:
                    table.setdefault(stage, {})[int(n)] = (cell["seconds"], cell["peak_mb"])
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        for n in sorted(args.sizes):
            root = scratch(work / str(n), n)
            total = 0.0
            for stage in stages(root):
                seconds, mb = run_stage(root, stage)
                total += seconds
                table.setdefault(stage, {})[n] = (seconds, mb)
                print(f"n={n:6d}  {stage:36s} {seconds:8.1f} s  {mb:8.0f} MB", flush=True)
            print(f"n={n:6d}  whole pipeline {total:.1f} s", flush=True)
            write_json(args.out / "scale.json", table)
            if not args.keep:
                shutil.rmtree(root)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ns = sorted({n for row in table.values() for n in row})
    if not ns:
        print("nothing to tabulate: give --sizes, or --previous with an earlier scale.json", file=sys.stderr)
        return 2
    write_json(args.out / "scale.json", table)
    header = " | ".join(f"n={n:,}: s, MB" for n in ns)
    last = f"{ns[-2]:,} to {ns[-1]:,}" if len(ns) > 1 else "last two sizes"
    lines = [f"| stage | {header} | growth (time) | {last} |", "|---" * (len(ns) + 3) + "|"]

    def slopes(values: list[float]) -> str:
        whole, local = growth(ns, values), growth(ns[-2:], values[-2:])
        return " | ".join("" if g is None else f"{round(g, 2) + 0.0:.2f}" for g in (whole, local))

    for stage, row in table.items():
        cells = " | ".join(f"{row[n][0]:.1f}, {row[n][1]:,.0f}" for n in ns)
        lines.append(f"| {stage} | {cells} | {slopes([row[n][0] for n in ns])} |")
    totals = [sum(row[n][0] for row in table.values()) for n in ns]
    peaks = [max(row[n][1] for row in table.values()) for n in ns]
    lines.append(
        "| **whole pipeline** | "
        + " | ".join(f"**{t:,.0f}, {p:,.0f}**" for t, p in zip(totals, peaks, strict=True))
        + f" | {slopes(totals)} |"
    )
    text = "\n".join(lines)
    (args.out / "scale.md").write_text(text + "\n")
    figure(args.out / "scale.png", ns, table)
    print(text)
    print(f"\nwritten: {args.out}/scale.json, scale.md, scale.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

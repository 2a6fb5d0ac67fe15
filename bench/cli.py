"""Benchmark: how long the command line takes to show its help, against a bare interpreter start
and an `import torch` measured in the same run (medians of whole processes).

    python bench/cli.py [--repeats 7]

Each subcommand's module is imported only when it runs or shows its help, so `postergenre --help`
and the data subcommands' help import neither torch nor scikit-learn.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from postergenre.apps.cli import LIGHT_HELP as COMMANDS


def seconds(args: list[str], repeats: int) -> float:
    """Median wall time of `args` as a whole process, after one warm-up run."""
    subprocess.run(args, capture_output=True, check=False)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(args, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    python = sys.executable
    bare = seconds([python, "-c", "pass"], args.repeats)
    torch = seconds([python, "-c", "import torch"], args.repeats)
    print(
        f"reference: bare interpreter {bare:.3f} s, `import torch` {torch:.3f} s (medians of {args.repeats})"
    )
    print(f"{'command':<40} {'s':>6} {'x bare':>7} {'x torch':>8}")
    for command in COMMANDS:
        s = seconds([python, "-m", "postergenre.apps.cli", *command, "--help"], args.repeats)
        name = " ".join(["postergenre", *command, "--help"])
        print(f"{name:<40} {s:6.3f} {s / bare:7.1f} {s / torch:8.2f}")


if __name__ == "__main__":
    main()

"""Benchmark: the stages whose peak memory grows with the posters (resize, embed) run again
inside a memory cgroup capped well below their uncapped peak: do they finish, how long do they
take against uncapped in the same run, and do they write the same bytes.

    python bench/memory_cap.py [--n 35000] [--cap-mb 2048]    # as root

A scratch project as bench/scale.py makes one (the default params, n synthetic posters) runs
every stage up to the embed stages, each timed under GNU time; then resize and each embed stage
run again (`dvc repro -s -f`) inside the cgroup, and dvc.lock is compared with its copy from
before. Their uncapped peaks count the pages of the memory-mapped arrays they write and read,
which the kernel may drop under pressure; the cap shows whether they need them.

Needs root and a memory controller: cgroup v1 (/sys/fs/cgroup/memory) or v2 (memory.max).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # noqa: E402

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


def make_cgroup(cap_bytes: int) -> Path:
    """A memory cgroup capped at cap_bytes (its folder)."""
    if (V1 / "memory.limit_in_bytes").exists():
        group, limit = V1 / "postergenre-bench", "memory.limit_in_bytes"
    elif "memory" in (V2 / "cgroup.controllers").read_text(errors="ignore").split():
        group, limit = V2 / "postergenre-bench", "memory.max"
    else:
        raise SystemExit("no cgroup memory controller found (v1 /sys/fs/cgroup/memory or v2 memory.max)")
    group.mkdir(exist_ok=True)
    if not (group / limit).exists():
        raise SystemExit(f"{group} has no {limit}: is the memory controller enabled for it?")
    (group / limit).write_text(str(cap_bytes))
    return group


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=35000)
    parser.add_argument("--cap-mb", type=int, default=2048)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("a memory cgroup needs root", file=sys.stderr)
        return 2
    group = make_cgroup(args.cap_mb * 1024 * 1024)

    def join() -> None:
        (group / "cgroup.procs").write_text(str(os.getpid()))

    work = Path(tempfile.mkdtemp(prefix="bench-memcap-"))
    try:
        root = scale.scratch(work / str(args.n), args.n)
        names = scale.stages(root)
        heavy = ["resize", *[s for s in names if s.startswith("embed")]]
        uncapped = {}
        for stage in names[: names.index(heavy[-1]) + 1]:
            seconds, mb = uncapped[stage] = scale.run_stage(root, stage)
            print(f"n={args.n}  {stage:36s} {seconds:8.1f} s  {mb:8.0f} MB", flush=True)
        lock = (root / "dvc.lock").read_text()
        print(f"\nagain inside a {args.cap_mb:,} MB memory cgroup:")
        print("| stage | uncapped: s, peak MB | capped: s, peak MB |\n|---|---|---|")
        for stage in heavy:
            seconds, mb = scale.run_stage(root, stage, force=True, preexec_fn=join)
            t0, m0 = uncapped[stage]
            print(f"| {stage} | {t0:.1f}, {m0:,.0f} | {seconds:.1f}, {mb:,.0f} |", flush=True)
        same = (root / "dvc.lock").read_text() == lock
        print(f"\ndvc.lock after the capped runs: {'unchanged (the same bytes)' if same else 'CHANGED'}")
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
        try:
            group.rmdir()  # empty once its processes have exited
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())

"""Outputs appear whole or not at all: write beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target` (file or folder); rename it over `target` on success.

    On any exception the temporary is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    remove(tmp)
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            remove(old)
        else:
            os.replace(tmp, target)
    finally:
        remove(tmp)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


# what atomic_path writes beside its target: `.<name>.tmp-<pid>` (the new one), `.<name>.old-<pid>`
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$")


def left_by_dead_writer(path: Path) -> bool:
    """Whether `path` is a temporary of atomic_path whose writing process is gone."""
    m = TEMPORARY.match(path.name)
    return m is not None and int(m["pid"]) != os.getpid() and not process_alive(int(m["pid"]))


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporaries a killed writer of `target` left; return what was removed."""
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.*-*"):
        m = TEMPORARY.match(path.name)
        if m and m["name"] == target.name and left_by_dead_writer(path):
            remove(path)
            removed.append(path)
    return removed


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_npz(target: str | Path, arrays: dict[str, Any]) -> None:
    """Named arrays in one .npz (numpy writes equal arrays as equal bytes)."""
    import numpy as np

    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def write_json(target: str | Path, obj: Any) -> None:
    """JSON with sorted keys and a final newline, so equal content gives equal bytes."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

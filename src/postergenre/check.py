"""check-params: params.yaml valid, its data folders there, dvc.yaml's method stages current.

The stage runs `python -m postergenre.check --out data/params_check.json` (also
`postergenre check-params`). ingest depends on the marker it writes, so DVC runs this check
before it would remove ingest's output for a bad `data.path`; the marker never changes, so a
passing check re-runs nothing downstream.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from postergenre import entry

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="write a marker file when valid (the DVC stage's output)")
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    from postergenre.atomic import write_json
    from postergenre.dag import stale
    from postergenre.params import all_methods
    from postergenre.paths import resolve_data_path

    if Path("dvc.yaml").is_file() and stale(Path("dvc.yaml"), params):
        raise ValueError("dvc.yaml is stale: its method stages do not match params.yaml and the "
                         "method modules' imports; run `postergenre dag`")
    data = params["data"]
    # The synthetic source's folder is the synthesize stage's output, made later in the run.
    if data["source"] != "synthetic":
        for key in ("path", "posters"):
            if data[key] and not resolve_data_path(data[key]).exists():
                raise ValueError(f"data.{key} {data[key]!r} does not exist (resolved to "
                                 f"{resolve_data_path(data[key])}); nothing was changed")
    if args.out:
        write_json(args.out, {"params": "valid"})
    log.info("params: %s is valid (source %s, methods %s)", args.params or "params.yaml",
             data["source"], ", ".join(all_methods(params)))


if __name__ == "__main__":
    sys.exit(entry.main("check", __doc__, add_arguments, run))

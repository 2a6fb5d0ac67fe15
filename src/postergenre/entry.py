"""How every command starts and ends: one log format, params.yaml loaded and validated, and a
known error printed as one line with exit status 2 (no traceback for a user's mistake)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable


def progress() -> bool:
    """Progress bars on a terminal, quiet under CI and in logs."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def add_params_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=None, help="params file (default params.yaml)")


def run(command: str, args: argparse.Namespace, func: Callable, needs_params: bool = True) -> int:
    """Call func(args, params) with params.yaml loaded (or None); 0 on success, 2 on a known error."""
    from postergenre.params import load

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        params = load(args.params or "params.yaml") if needs_params else None
        func(args, params)
    except (FileNotFoundError, ValueError) as exc:  # ParamsError, SourceError are ValueErrors
        print(f"postergenre {command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(command: str, doc: str, add_arguments: Callable, func: Callable,
         argv: list[str] | None = None) -> int:
    """`python -m postergenre.<command>`: the stage's own arguments, then `run`."""
    parser = argparse.ArgumentParser(prog=f"python -m postergenre.{command}", description=doc)
    add_arguments(parser)
    return run(command, parser.parse_args(argv), func)

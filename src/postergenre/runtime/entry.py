"""How every command starts and ends: one log format, params.yaml loaded and validated, and a
known error printed as one line with exit status 2 (no traceback for a user's mistake)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from postergenre import __version__
from postergenre.core import paths


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_params_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=None, help="params file (default params.yaml)")


def add_data_option(parser: argparse.ArgumentParser) -> None:
    """Where the data stages' outputs are read from (the stage calls `paths.use_data`)."""
    parser.add_argument(
        "--data",
        default=str(paths.DATA),
        help="the data stages' folder: interim/, resized/, split/, features/",
    )


def add_method_argument(parser: argparse.ArgumentParser) -> None:
    """The METHOD positional: one of the method modules, with its section in the params file."""
    # here, not at the top: the method registry and its settings (pydantic, numpy) cost 0.3 s
    # that `postergenre --help` and the data subcommands do not need (bench/cli.py)
    from postergenre.methods import specs

    names = sorted(specs())
    parser.add_argument(
        "method",
        metavar="METHOD",
        choices=names,
        help=f"one of {', '.join(names)} (its section in params.yaml is read)",
    )


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (paragraphs kept); every option's default shown, unless it has
    none or its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "%(default)" in text
            or "default" in text
            or action.default in (None, False)
            or action.default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def version() -> str:
    return f"postergenre {__version__}"


def run(command: str, args: argparse.Namespace, func: Callable, needs_params: bool = True) -> int:
    """Call func(args, params) with params.yaml loaded (or None); 0 on success, 2 on a known error."""
    from postergenre.methods.params import load  # as above: not needed to show help

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    try:
        params = load(args.params or "params.yaml") if needs_params else None
        func(args, params)
    except (FileNotFoundError, ValueError) as exc:  # ParamsError, SourceError are ValueErrors
        print(f"postergenre {command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(
    command: str,
    doc: str,
    add_arguments: Callable,
    func: Callable,
    argv: list[str] | None = None,
    needs_params: bool = True,
) -> int:
    """`python -m postergenre.<command>`: the stage's own arguments, then `run`."""
    parser = argparse.ArgumentParser(
        prog=f"python -m postergenre.{command}", description=doc, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=version())
    add_arguments(parser)
    return run(command, parser.parse_args(argv), func, needs_params)

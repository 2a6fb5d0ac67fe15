"""synthesize: the default data, posters whose colours and shapes depend on their genres."""

from __future__ import annotations

import argparse
import logging
import sys

from postergenre.core.paths import SYNTHETIC
from postergenre.data.synthetic import generate
from postergenre.runtime import entry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=str(SYNTHETIC), help="movies.csv and posters/ go here")
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    syn = params["data"]["synthetic"]
    generate(
        args.out,
        n=syn["n"],
        seed=syn["seed"],
        width=syn["width"],
        height=syn["height"],
        noise=syn["noise"],
        progress=True,
    )
    logging.getLogger(__name__).info("synthesize: %d posters in %s", syn["n"], args.out)


if __name__ == "__main__":
    sys.exit(entry.main("synthesize", __doc__, add_arguments, run))

"""ingest: read data.source, apply the cleaning rules, write data/interim and its report."""

from __future__ import annotations

import argparse
import sys

from postergenre.core import paths
from postergenre.data.ingest import ingest
from postergenre.runtime import entry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=str(paths.interim()), help="movies.csv, genres.json, the report")
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    ingest(params["data"], params["clean"]["min_genre_count"], args.out)


if __name__ == "__main__":
    sys.exit(entry.main("ingest", __doc__, add_arguments, run))

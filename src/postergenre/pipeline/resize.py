"""resize: decode each poster once and write it at every size in resize.sizes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from postergenre.core import paths
from postergenre.core.dataset import read_poster_paths
from postergenre.core.images import resize_posters
from postergenre.data.sources import posters_root
from postergenre.runtime import entry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interim", default=str(paths.interim()), help="the ingest stage's folder")
    parser.add_argument("--out", default=str(paths.resized()), help="an array per size, manifest, report")
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    paths = read_poster_paths(posters_root(params["data"]), Path(args.interim))
    resize_posters(
        list(paths),
        list(paths.values()),
        params["resize"]["sizes"],
        args.out,
        workers=params["resize"]["workers"],
        max_pixels=params["resize"]["max_pixels"],
        progress=True,
    )


if __name__ == "__main__":
    sys.exit(entry.main("resize", __doc__, add_arguments, run))

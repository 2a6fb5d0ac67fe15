"""split: train/dev/test by iterative stratification over the resized posters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from postergenre.core import dataset, paths
from postergenre.runtime import entry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interim", default=str(paths.interim()), help="the ingest stage's folder")
    parser.add_argument("--resized", default=str(paths.resized()), help="the resize stage's folder")
    parser.add_argument(
        "--out", default=str(paths.split()), help="train.txt, dev.txt, test.txt and the report"
    )
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    # here, not at the top: scikit-multilearn imports scikit-learn and SciPy (2.4 s), which
    # `postergenre split --help` does not need
    from postergenre.data.split import write_split

    genres = dataset.read_genres(Path(args.interim))
    labels = dataset.read_labels(Path(args.interim))
    ids = dataset.read_manifest(Path(args.resized))
    Y = dataset.label_matrix([labels[i] for i in ids], genres)
    write_split(ids, Y, genres, params["split"], params["split"]["seed"], args.out)


if __name__ == "__main__":
    sys.exit(entry.main("split", __doc__, add_arguments, run))

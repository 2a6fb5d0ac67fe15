"""embed: every resized poster through the pretrained backbone once -> cached features."""

from __future__ import annotations

import argparse
import sys

from postergenre import entry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resized", default="data/resized", help="the resize stage's folder")
    parser.add_argument("--out", default="data/features", help="features folder")
    parser.add_argument("--timing", default="metrics/embed.json",
                        help="where the run's seconds and posters/s go (kept out of --out)")
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    from postergenre.embed import embed_posters

    embed = params["embed"]
    embed_posters(args.resized, args.out, embed["backbone"], embed["size"], embed["batch_size"],
                  timing=args.timing, threads=embed["threads"])


if __name__ == "__main__":
    sys.exit(entry.main("stages.embed", __doc__, add_arguments, run))

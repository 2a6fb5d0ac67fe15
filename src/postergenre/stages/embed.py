"""embed: every resized poster through one pretrained backbone in one view -> cached features."""

from __future__ import annotations

import argparse
import sys

from postergenre import entry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", required=True, help="one of embed.backbones")
    parser.add_argument("--view", required=True, help="one of embed.views")
    parser.add_argument("--resized", default="data/resized", help="the resize stage's folder")
    parser.add_argument("--out", default=None,
                        help="features folder (default data/features/BACKBONE/VIEW)")
    parser.add_argument("--timing", default=None,
                        help="where the run's seconds and posters/s go, kept out of --out "
                             "(default metrics/embed/BACKBONE-VIEW.json)")
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    from postergenre.embed import embed_posters

    embed = params["embed"]
    for name, value, known in (("backbone", args.backbone, embed["backbones"]),
                               ("view", args.view, embed["views"])):
        if value not in known:
            raise ValueError(f"--{name} {value!r} is not in embed.{name}s {known}")
    out = args.out or f"data/features/{args.backbone}/{args.view}"
    timing = args.timing or f"metrics/embed/{args.backbone}-{args.view}.json"
    embed_posters(args.resized, out, args.backbone, args.view, embed["size"], embed["batch_size"],
                  timing=timing, threads=embed["threads"])


if __name__ == "__main__":
    sys.exit(entry.main("stages.embed", __doc__, add_arguments, run))

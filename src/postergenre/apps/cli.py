"""postergenre: predict a movie's genres from its poster.

One subcommand per pipeline stage (what `dvc repro` runs, each reading params.yaml), and the
apps: download-posters, predict, explain, serve, compare (experiments side by side),
check-remote (can the DVC remote be used?). `postergenre SUBCOMMAND --help` describes each.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from postergenre.runtime import entry

# name -> (module, one line of help). A subcommand's module is imported only when it runs or
# shows its help: importing every stage (torch among them) made `postergenre --help` take
# seconds. The stages run the same modules as `python -m ...`, so editing this file re-runs none.
COMMANDS = {
    "check-params": ("postergenre.pipeline.check", "validate params.yaml, data.path, the ensemble stages"),
    "synthesize": ("postergenre.pipeline.synthesize", "generate the synthetic posters"),
    "ingest": ("postergenre.pipeline.ingest", "read data.source, apply the cleaning rules"),
    "resize": ("postergenre.pipeline.resize", "decode each poster once, write every size"),
    "split": ("postergenre.pipeline.split", "train/dev/test by iterative stratification"),
    "embed": ("postergenre.pipeline.embed", "posters -> pretrained backbone features, once"),
    "train": ("postergenre.pipeline.train", "fit one method on the train split"),
    "evaluate": ("postergenre.pipeline.evaluate", "score one model on the test split"),
    "genre-maps": ("postergenre.pipeline.genre_maps", "per genre: top test posters, heat maps"),
    "report": ("postergenre.pipeline.report", "every method side by side -> reports/results.md"),
    "download-posters": (
        "postergenre.apps.download_posters",
        "fetch posters from TMDB's image server, resumably",
    ),
    "predict": ("postergenre.apps.predict", "genres for new posters from a model folder"),
    "explain": ("postergenre.apps.explain", "heat maps and nearest training posters for posters"),
    "serve": ("postergenre.apps.web", "a local web page: drop a poster, see scores, heat maps, neighbours"),
    "compare": ("postergenre.apps.compare", "experiments side by side, a table per headline metric"),
    "check-remote": ("postergenre.apps.remote", "can the DVC remote be used? (one try, seconds)"),
}

# the front end and the subcommands whose --help stays light (no torch, MLflow, DVC, scikit-learn):
# bench/cli.py times them, tests/test_readable.py holds their imports to it
LIGHT_HELP: list[list[str]] = [[]] + [
    [name]
    for name in (
        "check-params",
        "synthesize",
        "ingest",
        "resize",
        "split",
        "embed",
        "download-posters",
        "predict",
    )
]


def _top_parser() -> argparse.ArgumentParser:
    width = max(map(len, COMMANDS))
    listing = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="postergenre",
        description=__doc__,
        epilog=f"subcommands:\n{listing}",
        formatter_class=entry.HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=entry.version())
    parser.add_argument(
        "--params",
        dest="top_params",
        default=None,
        metavar="FILE",
        help="params file (default params.yaml); also accepted after the subcommand",
    )
    parser.add_argument(
        "command", metavar="SUBCOMMAND", choices=list(COMMANDS), help="one of the subcommands below"
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    top = _top_parser().parse_args(argv)
    module_name, text = COMMANDS[top.command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"postergenre {top.command}",
        description=module.__doc__ or text,
        formatter_class=entry.HelpFormatter,
    )
    module.add_arguments(parser)
    if not any(a.dest == "params" for a in parser._actions):
        parser.set_defaults(params=None)
    args = parser.parse_args(top.args)
    args.params = args.params or top.top_params
    return entry.run(top.command, args, module.run, getattr(module, "NEEDS_PARAMS", True))


if __name__ == "__main__":
    sys.exit(main())

"""`postergenre <stage>`: one subcommand per pipeline stage, each reading params.yaml."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("postergenre")


def _progress() -> bool:
    """Progress bars on a terminal, quiet under CI and in logs."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_synthesize(args, params) -> None:
    from postergenre.data.synthetic import generate

    syn = params["data"]["synthetic"]
    generate(args.out, n=syn["n"], seed=params["seed"], width=syn["width"], height=syn["height"],
             noise=syn["noise"], progress=_progress())
    log.info("synthesize: %d posters in %s", syn["n"], args.out)


def cmd_ingest(args, params) -> None:
    from postergenre.data.ingest import ingest

    ingest(params["data"], params["clean"]["min_genre_count"], args.out)


def cmd_resize(args, params) -> None:
    import csv

    from postergenre.data.sources import posters_root
    from postergenre.images import resize_posters

    root = posters_root(params["data"])
    with open(Path(args.interim) / "movies.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    resize_posters([r["id"] for r in rows], [root / r["poster"] for r in rows],
                   params["resize"]["sizes"], args.out, workers=params["resize"]["workers"],
                   max_pixels=params["resize"]["max_pixels"], progress=_progress())


def cmd_split(args, params) -> None:
    from postergenre import dataset
    from postergenre.data.split import write_split

    genres = dataset.read_genres(Path(args.interim))
    labels = dataset.read_labels(Path(args.interim))
    ids = dataset.read_manifest(Path(args.resized))
    Y = dataset.label_matrix([labels[i] for i in ids], genres)
    write_split(ids, Y, genres, params["split"], params["seed"], args.out)


def cmd_embed(args, params) -> None:
    from postergenre.embed import embed_posters

    embed = params["embed"]
    embed_posters(args.resized, args.out, embed["backbone"], embed["size"], embed["batch_size"],
                  timing=args.timing, threads=embed["threads"])


def cmd_download_posters(args, params) -> None:
    from postergenre.data.download import DownloadSettings, download_posters

    settings = DownloadSettings(base_url=args.base_url, size=args.size,
                                concurrency=args.concurrency, timeout=args.timeout,
                                deadline=args.deadline,
                                retries=args.retries, max_bytes=args.max_bytes,
                                poster_key=args.poster_key, poster_ext=args.poster_ext)
    report = download_posters(args.metadata, args.out, settings, args.report, progress=_progress())
    if report["downloaded"] + report["already_present"] == 0 and report["rows_in"]:
        raise ValueError(f"no poster could be had; see {args.report or 'the report'}: "
                         f"{report['failed_by_reason']} {report['skipped_by_reason']}")


def cmd_predict(args, params) -> None:
    from postergenre.predict import format_table, predict_posters, to_json

    result = predict_posters(args.model, args.paths, top_k=args.top_k)
    print(to_json(result) if args.json else format_table(result))
    for error in result["errors"]:
        log.warning("not predicted: %s (%s %s)", error["poster"], error["reason"], error["detail"])
    if not result["predictions"]:
        raise ValueError("no poster could be predicted")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postergenre", description=__doc__)
    parser.add_argument("--params", dest="top_params", default=None,
                        help="params file (default params.yaml); also accepted after the subcommand")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synthesize", help="generate the synthetic posters (the default data)")
    p.add_argument("--out", default="data/raw/synthetic")
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("ingest", help="read data.source, apply the cleaning rules")
    p.add_argument("--out", default="data/interim")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("resize", help="decode each poster once, write every size")
    p.add_argument("--interim", default="data/interim")
    p.add_argument("--out", default="data/resized")
    p.set_defaults(func=cmd_resize)

    p = sub.add_parser("split", help="train/dev/test by iterative stratification")
    p.add_argument("--interim", default="data/interim")
    p.add_argument("--resized", default="data/resized")
    p.add_argument("--out", default="data/split")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("embed", help="posters -> pretrained backbone features, once")
    p.add_argument("--resized", default="data/resized")
    p.add_argument("--out", default="data/features")
    p.add_argument("--timing", default="metrics/embed.json",
                   help="where the run's seconds and posters/s go (kept out of --out)")
    p.set_defaults(func=cmd_embed)

    from postergenre import check, dag, evaluate, report, train

    # The stages run these as `python -m postergenre.<stage>`, so that a change to this file
    # re-runs no training; here they are subcommands with the same arguments.
    for name, module, text in [("check-params", check, "validate params.yaml, data.path, dvc.yaml"),
                               ("train", train, "fit one method on the train split"),
                               ("evaluate", evaluate, "score one model on the test split"),
                               ("report", report, "every method side by side -> reports/results.md"),
                               ("dag", dag, "write dvc.yaml's method stages from params and the code")]:
        p = sub.add_parser(name, help=text)
        module.add_arguments(p)
        p.set_defaults(func=module.run)

    from postergenre.data.download import DownloadSettings

    d = DownloadSettings()
    p = sub.add_parser("download-posters", help="fetch posters from TMDB's image server, resumably")
    p.add_argument("--metadata", required=True, help="Kaggle's movies_metadata.csv")
    p.add_argument("--out", required=True, help="posters folder, e.g. data/raw/posters")
    p.add_argument("--report", default=None, help="JSON report (default: beside --out)")
    p.add_argument("--base-url", default=d.base_url)
    p.add_argument("--size", default=d.size, help="TMDB image size (w500: 500x750)")
    p.add_argument("--concurrency", type=int, default=d.concurrency)
    p.add_argument("--timeout", type=float, default=d.timeout, help="seconds, connect and read")
    p.add_argument("--deadline", type=float, default=d.deadline,
                   help="seconds per poster, all tries together (default %(default)s)")
    p.add_argument("--retries", type=int, default=d.retries)
    p.add_argument("--max-bytes", type=int, default=d.max_bytes)
    p.add_argument("--poster-key", default=d.poster_key, choices=("poster_path", "imdb_id", "tmdb_id"),
                   help="what names each file, as data.poster_key for the tmdb source")
    p.add_argument("--poster-ext", default=d.poster_ext)
    p.set_defaults(func=cmd_download_posters, needs_params=False)

    p = sub.add_parser("predict", help="genres for new posters from a model folder")
    p.add_argument("paths", nargs="+", help="poster files or folders of posters")
    p.add_argument("--model", required=True, help="a model folder, e.g. models/custom")
    p.add_argument("--top-k", type=_positive_int, default=3, help="genres listed per poster")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=cmd_predict, needs_params=False)

    return parser


def main(argv: list[str] | None = None) -> int:
    from postergenre import entry

    args = build_parser().parse_args(argv)
    args.params = getattr(args, "params", None) or args.top_params
    return entry.run(args.command, args, args.func, getattr(args, "needs_params", True))

if __name__ == "__main__":
    sys.exit(main())

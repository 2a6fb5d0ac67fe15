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


def cmd_check_params(args, params) -> None:
    from postergenre.train import all_methods

    log.info("params: %s is valid (source %s, methods %s)", args.params, params["data"]["source"],
             ", ".join(all_methods(params)))


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
    embed_posters(args.resized, args.out, embed["backbone"], embed["size"], embed["batch_size"])


def cmd_train(args, params) -> None:
    from postergenre.tracking import stage_run
    from postergenre.train import method_settings, train_model

    _, _, reads = method_settings(params, args.method)
    with stage_run(f"train@{args.method}", reads) as run:
        summary = train_model(params, args.method, args.out, args.plots, run)
        run.log_metrics(summary)
    log.info("train@%s: saved to %s", args.method, args.out)


def cmd_evaluate(args, params) -> None:
    from postergenre.evaluate import evaluate_model
    from postergenre.tracking import stage_run
    from postergenre.train import method_settings

    method = args.method
    _, _, reads = method_settings(params, method)
    with stage_run(f"evaluate@{method}", reads) as run:
        result = evaluate_model(args.model, args.out, args.plots)
        run.log_metrics(result)
    log.info("evaluate@%s: %s", method, {k: v for k, v in result["test"]["at_0.5"].items()
                                         if k in ("at_least_one_match", "micro_f1")})


def cmd_report(args, params) -> None:
    from postergenre.report import write_report

    write_report(params, args.out)
    log.info("report: %s", args.out)


def cmd_download_posters(args, params) -> None:
    from postergenre.data.download import DownloadSettings, download_posters

    settings = DownloadSettings(base_url=args.base_url, size=args.size,
                                concurrency=args.concurrency, timeout=args.timeout,
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
    parser.add_argument("--params", default="params.yaml", help="params file (default %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-params", help="validate params.yaml and exit")
    p.set_defaults(func=cmd_check_params)

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
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("train", help="fit one method on the train split")
    p.add_argument("method")
    p.add_argument("--out", default=None, help="model folder (default models/METHOD)")
    p.add_argument("--plots", default=None, help="plots folder (default plots/METHOD)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score one model on the test split")
    p.add_argument("method")
    p.add_argument("--model", default=None, help="model folder (default models/METHOD)")
    p.add_argument("--out", default=None, help="metrics JSON (default metrics/METHOD.json)")
    p.add_argument("--plots", default=None, help="plots folder (default plots/METHOD)")
    p.set_defaults(func=cmd_evaluate)

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
    p.add_argument("--retries", type=int, default=d.retries)
    p.add_argument("--max-bytes", type=int, default=d.max_bytes)
    p.add_argument("--poster-key", default=d.poster_key, choices=("poster_path", "imdb_id", "tmdb_id"),
                   help="what names each file, as data.poster_key for the tmdb source")
    p.add_argument("--poster-ext", default=d.poster_ext)
    p.set_defaults(func=cmd_download_posters, needs_params=False)

    p = sub.add_parser("predict", help="genres for new posters from a model folder")
    p.add_argument("paths", nargs="+", help="poster files or folders of posters")
    p.add_argument("--model", required=True, help="a model folder, e.g. models/custom")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=cmd_predict, needs_params=False)

    p = sub.add_parser("report", help="every method side by side -> reports/results.md")
    p.add_argument("--out", default="reports/results.md")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    from postergenre.data.sources import SourceError
    from postergenre.params import ParamsError, load

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.command in ("train", "evaluate"):
        args.plots = args.plots or f"plots/{args.method}"
    if args.command == "train":
        args.out = args.out or f"models/{args.method}"
    if args.command == "evaluate":
        args.model = args.model or f"models/{args.method}"
        args.out = args.out or f"metrics/{args.method}.json"
    try:
        params = load(args.params) if getattr(args, "needs_params", True) else None
        args.func(args, params)
    except (ParamsError, SourceError, FileNotFoundError, ValueError) as exc:
        print(f"postergenre {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

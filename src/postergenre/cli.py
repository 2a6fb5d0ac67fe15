"""postergenre: predict a movie's genres from its poster.

One subcommand per pipeline stage (what `dvc repro` runs, each reading params.yaml), plus
`download-posters`, `predict`, `explain`, `serve`, `compare` (experiments side by side) and
`check-remote` (can the DVC remote be used?). `postergenre SUBCOMMAND --help` describes each.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger("postergenre")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_download_posters(args, params) -> None:
    from postergenre.data.download import DownloadSettings, download_posters

    settings = DownloadSettings(base_url=args.base_url, size=args.size,
                                concurrency=args.concurrency, timeout=args.timeout,
                                deadline=args.deadline,
                                retries=args.retries, max_bytes=args.max_bytes,
                                poster_key=args.poster_key, poster_ext=args.poster_ext)
    report = download_posters(args.metadata, args.out, settings, args.report, progress=True)
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


def cmd_explain(args, params) -> None:
    from postergenre.explain import explain_posters

    result = explain_posters(args.model, args.paths, args.out, cam_genres=args.genres)
    for e in result["explanations"]:
        print(f"{e['poster']}: {', '.join(e['genres']) or '-'} -> {args.out}/{e['png']}")
    if not result["explanations"]:
        raise ValueError("no poster could be explained")


def build_parser() -> argparse.ArgumentParser:
    from postergenre.entry import HelpFormatter, version

    parser = argparse.ArgumentParser(prog="postergenre", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=version())
    parser.add_argument("--params", dest="top_params", default=None, metavar="FILE",
                        help="params file (default params.yaml); also accepted after the subcommand")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    def add(name: str, text: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=description or text,
                              formatter_class=HelpFormatter)

    from postergenre import check, dag, evaluate, genre_maps, report, train
    from postergenre.stages import embed, ingest, resize, split, synthesize

    # The stages run these as `python -m postergenre...`, so that a change to this file re-runs
    # no stage; here they are subcommands with the same arguments.
    for name, module, text in [("check-params", check, "validate params.yaml, data.path, dvc.yaml"),
                               ("synthesize", synthesize, "generate the synthetic posters"),
                               ("ingest", ingest, "read data.source, apply the cleaning rules"),
                               ("resize", resize, "decode each poster once, write every size"),
                               ("split", split, "train/dev/test by iterative stratification"),
                               ("embed", embed, "posters -> pretrained backbone features, once"),
                               ("train", train, "fit one method on the train split"),
                               ("evaluate", evaluate, "score one model on the test split"),
                               ("genre-maps", genre_maps, "per genre: top test posters, heat maps"),
                               ("report", report, "every method side by side -> reports/results.md"),
                               ("dag", dag, "write dvc.yaml's method stages from params and the code")]:
        p = add(name, text, module.__doc__)
        module.add_arguments(p)
        p.set_defaults(func=module.run)

    from postergenre import compare, remote

    p = add("check-remote", "can the DVC remote be used? (one try, seconds)", remote.__doc__)
    remote.add_arguments(p)
    p.set_defaults(func=remote.run, needs_params=False)

    p = add("compare", "experiments side by side, a table per headline metric", compare.__doc__)
    compare.add_arguments(p)
    p.set_defaults(func=compare.run, needs_params=False)

    from postergenre.data.download import DownloadSettings

    d = DownloadSettings()
    from postergenre.data import download

    p = add("download-posters", "fetch posters from TMDB's image server, resumably",
            download.__doc__)
    p.add_argument("--metadata", required=True, help="Kaggle's movies_metadata.csv")
    p.add_argument("--out", required=True, help="posters folder, e.g. data/raw/posters")
    p.add_argument("--report", default=None, help="JSON report (default: beside --out)")
    p.add_argument("--base-url", default=d.base_url, help="the image server")
    p.add_argument("--size", default=d.size, help="TMDB image size (w500: 500x750)")
    p.add_argument("--concurrency", type=_positive_int, default=d.concurrency,
                   help="posters fetched at once")
    p.add_argument("--timeout", type=float, default=d.timeout, help="seconds, connect and read")
    p.add_argument("--deadline", type=float, default=d.deadline,
                   help="seconds per poster, all tries together")
    p.add_argument("--retries", type=int, default=d.retries,
                   help="tries after the first, on errors worth retrying")
    p.add_argument("--max-bytes", type=int, default=d.max_bytes, help="largest poster accepted")
    p.add_argument("--poster-key", default=d.poster_key, choices=("poster_path", "imdb_id", "tmdb_id"),
                   help="what names each file, as data.poster_key for the tmdb source")
    p.add_argument("--poster-ext", default=d.poster_ext, help="file name suffix")
    p.set_defaults(func=cmd_download_posters, needs_params=False)

    from postergenre import predict

    p = add("predict", "genres for new posters from a model folder", predict.__doc__)
    p.add_argument("paths", nargs="+", help="poster files or folders of posters")
    p.add_argument("--model", required=True, help="a model folder, e.g. models/custom")
    p.add_argument("--top-k", type=_positive_int, default=3, help="genres listed per poster")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=cmd_predict, needs_params=False)

    from postergenre import explain

    p = add("explain", "heat maps and nearest training posters for posters", explain.__doc__)
    explain.add_arguments(p)
    p.set_defaults(func=cmd_explain, needs_params=False)

    from postergenre import web

    p = add("serve", "a local web page: drop a poster, see scores, heat maps, neighbours",
            web.__doc__)
    web.add_arguments(p)
    p.set_defaults(func=lambda args, params: web.run(args), needs_params=False)

    return parser


def main(argv: list[str] | None = None) -> int:
    from postergenre import entry

    args = build_parser().parse_args(argv)
    args.params = getattr(args, "params", None) or args.top_params
    return entry.run(args.command, args, args.func, getattr(args, "needs_params", True))

if __name__ == "__main__":
    sys.exit(main())

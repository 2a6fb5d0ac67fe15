"""download-posters: fetch the posters of Kaggle's movies_metadata.csv from TMDB's image server.

Resumable (a poster already on disk is kept), bounded (per-poster deadline, size cap, retries
only on errors worth retrying) and reported (a JSON report of every poster fetched, skipped or
failed with its reason). `postergenre download-posters --metadata FILE --out DIR`.
"""

from __future__ import annotations

import argparse
import sys

from postergenre.data.download import DownloadSettings, download_posters
from postergenre.runtime import entry

NEEDS_PARAMS = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DownloadSettings()
    parser.add_argument("--metadata", required=True, help="Kaggle's movies_metadata.csv")
    parser.add_argument("--out", required=True, help="posters folder, e.g. data/raw/posters")
    parser.add_argument("--report", default=None, help="JSON report (default: beside --out)")
    parser.add_argument("--base-url", default=d.base_url, help="the image server")
    parser.add_argument("--size", default=d.size, help="TMDB image size (w500: 500x750)")
    parser.add_argument(
        "--concurrency", type=entry.positive_int, default=d.concurrency, help="posters fetched at once"
    )
    parser.add_argument("--timeout", type=float, default=d.timeout, help="seconds, connect and read")
    parser.add_argument(
        "--deadline", type=float, default=d.deadline, help="seconds per poster, all tries together"
    )
    parser.add_argument(
        "--retries", type=int, default=d.retries, help="tries after the first, on errors worth retrying"
    )
    parser.add_argument("--max-bytes", type=int, default=d.max_bytes, help="largest poster accepted")
    parser.add_argument(
        "--poster-key",
        default=d.poster_key,
        choices=("poster_path", "imdb_id", "tmdb_id"),
        help="what names each file, as data.poster_key for the tmdb source",
    )
    parser.add_argument("--poster-ext", default=d.poster_ext, help="file name suffix")


def run(args: argparse.Namespace, params: dict | None) -> None:
    settings = DownloadSettings(
        base_url=args.base_url,
        size=args.size,
        concurrency=args.concurrency,
        timeout=args.timeout,
        deadline=args.deadline,
        retries=args.retries,
        max_bytes=args.max_bytes,
        poster_key=args.poster_key,
        poster_ext=args.poster_ext,
    )
    report = download_posters(args.metadata, args.out, settings, args.report, progress=True)
    if report["downloaded"] + report["already_present"] == 0 and report["rows_in"]:
        raise ValueError(
            f"no poster could be had; see {args.report or 'the report'}: "
            f"{report['failed_by_reason']} {report['skipped_by_reason']}"
        )


if __name__ == "__main__":
    sys.exit(entry.main("download-posters", __doc__, add_arguments, run, needs_params=False))

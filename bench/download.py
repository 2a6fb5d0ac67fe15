"""Benchmark: the poster downloader, default concurrency against one worker, in one run.

A local HTTP server (its own process) answers every poster with a real poster's bytes after a
fixed latency standing in for the network (TMDB is tens of milliseconds away).

    python bench/download.py [--n 2000] [--latency 0.02] [--poster PATH]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from postergenre.data.download import DownloadSettings, download_posters

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSTERGENRE_SHARED_DATA", REPO.parent / "shared" / "data"))

SERVER = """
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
body = open(sys.argv[1], 'rb').read(); latency = float(sys.argv[2])
class H(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def do_GET(self):
        time.sleep(latency)
        self.send_response(200); self.send_header('Content-Type', 'image/jpeg')
        self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
ThreadingHTTPServer.daemon_threads = True
s = ThreadingHTTPServer(('127.0.0.1', 0), H); print(s.server_address[1], flush=True); s.serve_forever()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument(
        "--poster", type=Path, default=SHARED / "movielens-posters" / "posters" / "113228.jpg"
    )
    args = parser.parse_args()
    if not args.poster.is_file():
        print(f"no poster at {args.poster}; pass --poster PATH", file=sys.stderr)
        return 2
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.poster), str(args.latency)], stdout=subprocess.PIPE, text=True
    )
    try:
        base = f"http://127.0.0.1:{server.stdout.readline().strip()}/t/p"
        with tempfile.TemporaryDirectory() as tmp:
            meta = Path(tmp) / "m.csv"
            with open(meta, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["id", "poster_path"])
                writer.writerows((i, f"/p{i}.jpg") for i in range(args.n))
            rates = {}
            default = DownloadSettings().concurrency
            for workers in (1, default):
                out = Path(tmp) / f"out{workers}"
                t0 = time.perf_counter()
                report = download_posters(
                    meta,
                    out,
                    DownloadSettings(base_url=base, concurrency=workers),
                    Path(tmp) / "r.json",
                    progress=False,
                )
                rates[workers] = report["downloaded"] / (time.perf_counter() - t0)
                assert report["downloaded"] == args.n, report["failed_by_reason"]
        print(
            f"{args.n} posters of {args.poster.stat().st_size} bytes, {args.latency * 1000:.0f} ms "
            f"server latency"
        )
        print(f"1 worker:            {rates[1]:8.1f} posters/s")
        print(
            f"{default} workers (default): {rates[default]:8.1f} posters/s -> "
            f"{rates[default] / rates[1]:.1f}x"
        )
    finally:
        server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())

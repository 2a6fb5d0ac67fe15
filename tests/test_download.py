"""The poster downloader against a real HTTP server on 127.0.0.1."""

import csv
import gzip
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from postergenre.data.download import DownloadSettings, download_posters
from tests.conftest import jpeg_bytes

MAX_BYTES = 50_000


def poster_bytes(name: str) -> bytes:
    shade = int(hashlib.md5(name.encode()).hexdigest()[:2], 16)
    return jpeg_bytes(20, 30, (shade, 255 - shade, 90))


class Handler(BaseHTTPRequestHandler):
    hits: dict = {}
    times: dict = {}
    delay = 0.0

    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        if not any(k == "Content-Length" for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (the timeout tests): nothing to answer

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        n = Handler.hits[name] = Handler.hits.get(name, 0) + 1
        Handler.times.setdefault(name, []).append(time.monotonic())
        if Handler.delay:
            time.sleep(Handler.delay)
        if name == "missing.jpg":
            return self._send(404, b"not found")
        if name == "flaky.jpg" and n == 1:
            return self._send(500, b"oops")
        if name == "busy.jpg" and n == 1:
            return self._send(429, b"slow down", [("Retry-After", "1")])
        if name == "slow.jpg":
            time.sleep(1.0)
        if name == "cut.jpg":
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(poster_bytes(name)[:100])
            self.close_connection = True
            return None
        if name == "redirect.jpg":
            return self._send(302, b"", [("Location", "/t/p/w500/target.jpg")])
        if name == "page.jpg":
            return self._send(200, b"<html><body>Not a poster</body></html>", [("Content-Type", "text/html")])
        if name == "huge.jpg":
            return self._send(200, b"\xff" * (MAX_BYTES + 10))
        if name == "drip.jpg":  # one byte every 0.1 s, each within the read timeout, for ever
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            try:
                for byte in poster_bytes(name) * 10:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:  # the client gave up
                pass
            self.close_connection = True
            return None
        if name == "gz.jpg":
            return self._send(200, gzip.compress(poster_bytes(name)), [("Content-Encoding", "gzip")])
        if name == "bomb.jpg":
            return self._send(200, gzip.compress(b"\0" * (20 * MAX_BYTES)), [("Content-Encoding", "gzip")])
        if name == "tofile.jpg":
            return self._send(302, b"", [("Location", "file:///etc/passwd")])
        if name == "toftp.jpg":
            return self._send(302, b"", [("Location", "ftp://127.0.0.1/poster.jpg")])
        return self._send(200, poster_bytes(name), [("Content-Type", "image/jpeg")])


@pytest.fixture
def server():
    Handler.hits, Handler.times, Handler.delay = {}, {}, 0.0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/t/p"
    httpd.shutdown()
    httpd.server_close()


def metadata(path: Path, names: list[str], extra_rows=()) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "imdb_id", "title", "poster_path"])
        for i, name in enumerate(names, 1):
            writer.writerow([i, f"tt{i:07d}", f"Movie {i}", f"/{name}"])
        writer.writerows(extra_rows)
    return path


def settings(base: str, **kw) -> DownloadSettings:
    return DownloadSettings(
        base_url=base, concurrency=4, timeout=0.5, retries=2, backoff=0.01, max_bytes=MAX_BYTES, **kw
    )


CASES = [
    "ok1.jpg",
    "ok2.jpg",
    "missing.jpg",
    "flaky.jpg",
    "busy.jpg",
    "slow.jpg",
    "cut.jpg",
    "redirect.jpg",
    "page.jpg",
    "huge.jpg",
]


def test_every_case_ends_as_the_report_says(server, tmp_path):
    meta = metadata(
        tmp_path / "m.csv",
        CASES,
        extra_rows=[
            [100, "tt1", "No Path", ""],
            [101, "tt2", "Escape", "/../../etc/passwd"],
            [102, "tt3", "Relative", "x.jpg"],
        ],
    )
    out = tmp_path / "posters"
    report = download_posters(meta, out, settings(server), tmp_path / "r.json", progress=False)
    assert report["rows_in"] == 13
    assert report["downloaded"] == 5 and report["already_present"] == 0
    assert report["failed_by_reason"] == {
        "incomplete_body": 1,
        "not_an_image": 1,
        "not_found": 1,
        "timeout": 1,
        "too_large": 1,
    }
    assert report["skipped_by_reason"] == {"bad_poster_path": 2, "no_poster_path": 1}
    assert sorted(p.name for p in out.iterdir()) == [
        "busy.jpg",
        "flaky.jpg",
        "ok1.jpg",
        "ok2.jpg",
        "redirect.jpg",
    ]
    assert (out / "redirect.jpg").read_bytes() == poster_bytes("target.jpg")
    assert (out / "ok1.jpg").read_bytes() == poster_bytes("ok1.jpg")
    assert Handler.hits["missing.jpg"] == 1  # no retry on 404
    assert Handler.hits["slow.jpg"] == 3  # one try and two retries
    busy = Handler.times["busy.jpg"]
    assert busy[1] - busy[0] >= 0.95  # Retry-After: 1 honoured
    assert (tmp_path / "r.json").is_file()


def test_rerun_fetches_only_what_is_missing(server, tmp_path):
    meta = metadata(tmp_path / "m.csv", ["ok1.jpg", "ok2.jpg", "missing.jpg"])
    out = tmp_path / "posters"
    download_posters(meta, out, settings(server), tmp_path / "r.json", progress=False)
    (out / "ok2.jpg").unlink()
    report = download_posters(meta, out, settings(server), tmp_path / "r.json", progress=False)
    assert report["already_present"] == 1 and report["downloaded"] == 1 and report["failed"] == 1
    assert Handler.hits == {"ok1.jpg": 1, "ok2.jpg": 2, "missing.jpg": 2}


def test_files_can_be_named_by_imdb_id_as_the_tmdb_source_expects(server, tmp_path):
    meta = metadata(tmp_path / "m.csv", ["ok1.jpg"])
    out = tmp_path / "posters"
    download_posters(meta, out, settings(server, poster_key="imdb_id"), tmp_path / "r.json", progress=False)
    assert [p.name for p in out.iterdir()] == ["1.jpg"]


def test_killed_run_then_rerun_equals_an_uninterrupted_run(server, tmp_path):
    names = [f"p{i}.jpg" for i in range(40)]
    meta = metadata(tmp_path / "m.csv", names)
    Handler.delay = 0.05
    full = tmp_path / "full"
    download_posters(meta, full, settings(server), tmp_path / "r0.json", progress=False)
    killed = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "postergenre.apps.cli",
        "download-posters",
        "--metadata",
        str(meta),
        "--out",
        str(killed),
        "--base-url",
        server,
        "--concurrency",
        "4",
        "--report",
        str(tmp_path / "r1.json"),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(list(killed.glob("*.jpg"))) < 8:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = sorted(p.name for p in killed.glob("*.jpg"))
    assert 0 < len(partial) < len(names)
    for p in killed.glob("*.jpg"):  # nothing partial under a final name
        assert p.read_bytes() == poster_bytes(p.name)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert sorted(os.listdir(killed)) == sorted(os.listdir(full))
    for name in os.listdir(full):
        assert (killed / name).read_bytes() == (full / name).read_bytes()


def test_drips_encodings_and_redirects_end_as_the_report_says(server, tmp_path):
    names = ["drip.jpg", "gz.jpg", "bomb.jpg", "tofile.jpg", "toftp.jpg"]
    meta = metadata(tmp_path / "m.csv", names)
    out = tmp_path / "posters"
    start = time.monotonic()
    report = download_posters(meta, out, settings(server, deadline=1.5), tmp_path / "r.json", progress=False)
    assert time.monotonic() - start < 6  # the drip is cut at its 1.5 s deadline, not held
    failed = {f["file"]: f["reason"] for f in report["failures"]}
    assert failed == {
        "drip.jpg": "deadline",
        "bomb.jpg": "too_large",
        "tofile.jpg": "bad_redirect",
        "toftp.jpg": "bad_redirect",
    }
    assert (out / "gz.jpg").read_bytes() == poster_bytes("gz.jpg")  # served gzipped, stored plain
    assert Handler.hits["drip.jpg"] == 1

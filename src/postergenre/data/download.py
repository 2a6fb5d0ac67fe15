"""download-posters: fetch the study's posters from TMDB's image server, resumably.

Each poster is written to a temporary name and renamed only once complete and decodable, so an
interrupted run leaves nothing partial under a final name, and a rerun fetches only what is
missing. Every row that yields no poster is in the report with its reason.
"""

from __future__ import annotations

import email.utils
import http.client
import io
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from postergenre.core.atomic import write_json
from postergenre.data.sources import TMDB_POSTER_PATH, read_csv_rows, tmdb_poster_name
from postergenre.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://image.tmdb.org/t/p"
PART = ".part-"


@dataclass
class DownloadSettings:
    base_url: str = DEFAULT_BASE_URL
    size: str = "w500"
    concurrency: int = 16
    timeout: float = 20.0  # seconds, for the connection and for each read
    deadline: float = 120.0  # seconds per poster, all tries together: a drip-feeding server stops here
    retries: int = 5
    backoff: float = 0.5  # first wait; doubles each retry, with jitter
    max_backoff: float = 60.0
    max_bytes: int = 10 * 2**20
    poster_key: str = "poster_path"
    poster_ext: str = ".jpg"


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


class _Fail(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow at most 5 redirects, to http(s) only, and never from https down to http."""

    max_redirections = 5

    def http_error_302(self, req, fp, code, msg, headers):
        target = headers.get("location") or headers.get("uri") or ""
        newurl = urllib.parse.urljoin(req.full_url, target)
        old, new = urllib.parse.urlsplit(req.full_url).scheme, urllib.parse.urlsplit(newurl).scheme
        if new not in ("http", "https") or (old == "https" and new == "http"):
            raise _Fail("bad_redirect", f"{code} to {newurl[:100]!r} refused")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_OPENER = urllib.request.build_opener(_SafeRedirects)


def _decoded(body: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding (gzip, deflate), at most `limit` + 1 bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise _Fail("unsupported_encoding", f"Content-Encoding {encoding[:40]!r}")
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    try:
        out = zlib.decompressobj(wbits).decompress(body, limit + 1)  # a zip bomb stops at limit
    except zlib.error as exc:
        raise _Fail("bad_encoding", f"{encoding}: {exc}") from None
    return out


def _fetch(url: str, settings: DownloadSettings, until: float | None = None) -> bytes:
    """One attempt, over by `until` (time.monotonic()): the body, or _Retry / _Fail."""
    request = urllib.request.Request(
        url, headers={"User-Agent": "postergenre", "Accept-Encoding": "gzip, identity"}
    )
    until = time.monotonic() + settings.deadline if until is None else until
    try:
        with _OPENER.open(request, timeout=settings.timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > settings.max_bytes:
                raise _Fail("too_large", f"Content-Length {length} > {settings.max_bytes}")
            chunks, size = [], 0
            while size <= settings.max_bytes:
                if time.monotonic() > until:
                    raise _Fail("deadline", f"not complete within {settings.deadline:g} s")
                chunk = response.read1(65536)  # whatever has arrived: a drip cannot hold us
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            body = b"".join(chunks)
            if len(body) > settings.max_bytes:
                raise _Fail("too_large", f"body over {settings.max_bytes} bytes")
            if length and length.isdigit() and len(body) != int(length):
                raise _Retry("incomplete_body")
            body = _decoded(body, response.headers.get("Content-Encoding", ""), settings.max_bytes)
            if len(body) > settings.max_bytes:
                raise _Fail("too_large", f"decoded body over {settings.max_bytes} bytes")
            return body
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise _Fail("not_found", url) from None
        if exc.code == 429 or exc.code >= 500:
            raise _Retry(f"http_{exc.code}", _retry_after(exc.headers.get("Retry-After"))) from None
        raise _Fail(f"http_{exc.code}", url) from None
    except (_Fail, _Retry):
        raise
    except http.client.IncompleteRead:
        raise _Retry("incomplete_body") from None
    except TimeoutError:
        raise _Retry("timeout") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, _Fail):
            raise exc.reason from None
        raise _Retry(f"connection_error: {exc}") from None
    except (http.client.HTTPException, ConnectionError, OSError) as exc:
        raise _Retry(f"connection_error: {exc}") from None


def _check_image(body: bytes) -> None:
    try:
        with Image.open(io.BytesIO(body)) as image:
            image.verify()
    except Exception as exc:  # any decoder complaint means: not a usable image
        raise _Fail("not_an_image", f"{type(exc).__name__}: {str(exc)[:80]}") from None


def fetch_poster(url: str, target: Path, settings: DownloadSettings, sleep=time.sleep) -> None:
    """Download `url` to `target` with retries; raise _Fail when it cannot be had."""
    reason = ""
    until = time.monotonic() + settings.deadline
    for attempt in range(settings.retries + 1):
        try:
            body = _fetch(url, settings, until)
            _check_image(body)
            tmp = target.with_name(f"{target.name}{PART}{os.getpid()}-{threading.get_ident()}")
            try:
                tmp.write_bytes(body)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            return
        except _Retry as exc:
            reason = exc.reason
            if attempt == settings.retries:
                break
            wait = min(settings.max_backoff, settings.backoff * 2**attempt)
            wait = wait * (0.5 + random.random())  # jitter, so retries do not arrive in step
            if exc.wait is not None:
                wait = max(wait, min(exc.wait, settings.max_backoff))
            if time.monotonic() + wait > until:
                raise _Fail("deadline", f"not had within {settings.deadline:g} s: {reason}") from None
            sleep(wait)
    raise _Fail(reason.split(":")[0], f"gave up after {settings.retries + 1} tries: {reason}")


def plan(metadata: Path, settings: DownloadSettings) -> tuple[list[tuple[str, str, str]], list[dict]]:
    """(row id, url, file name) per downloadable row, and the rows skipped with their reason."""
    header, rows = read_csv_rows(metadata, ("id", "poster_path"))
    jobs, skipped, names = [], [], set()
    for line, fields in rows:
        if len(fields) != len(header):
            skipped.append({"row": line, "id": "", "reason": "wrong_field_count", "detail": ""})
            continue
        row = dict(zip(header, fields, strict=True))
        path = row.get("poster_path", "").strip()
        if not path:
            skipped.append({"row": line, "id": row["id"], "reason": "no_poster_path", "detail": ""})
            continue
        if not TMDB_POSTER_PATH.match(path):
            skipped.append({"row": line, "id": row["id"], "reason": "bad_poster_path", "detail": path[:80]})
            continue
        try:
            name = tmdb_poster_name(row, settings.poster_key, settings.poster_ext)
        except ValueError as exc:
            skipped.append({"row": line, "id": row["id"], "reason": "bad_poster_key", "detail": str(exc)})
            continue
        if name in names:
            skipped.append({"row": line, "id": row["id"], "reason": "duplicate_poster", "detail": name})
            continue
        names.add(name)
        jobs.append((row["id"], f"{settings.base_url.rstrip('/')}/{settings.size}{path}", name))
    return jobs, skipped


def download_posters(
    metadata: str | Path,
    out_dir: str | Path,
    settings: DownloadSettings,
    report_path: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Fetch every missing poster named in `metadata` into `out_dir`; write and return a report."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f"*{PART}*"):  # left by a run that was killed mid-write
        stale.unlink()
    jobs, skipped = plan(Path(metadata), settings)
    todo = [job for job in jobs if not (out_dir / job[2]).is_file()]
    failures: list[dict] = []
    bar = Progress("download", len(todo), "poster", enabled=progress)
    with ThreadPoolExecutor(max(1, settings.concurrency)) as pool:
        futures = {
            pool.submit(fetch_poster, url, out_dir / name, settings): (movie_id, url, name)
            for movie_id, url, name in todo
        }
        for future in as_completed(futures):
            movie_id, url, name = futures[future]
            try:
                future.result()
            except _Fail as exc:
                failures.append(
                    {"id": movie_id, "url": url, "file": name, "reason": exc.reason, "detail": exc.detail}
                )
            bar.update(1)
    bar.close()
    failures.sort(key=lambda f: f["file"])
    report: dict[str, Any] = {
        "rows_in": len(jobs) + len(skipped),
        "rows_skipped": len(skipped),
        "already_present": len(jobs) - len(todo),
        "downloaded": len(todo) - len(failures),
        "failed": len(failures),
        "skipped_by_reason": dict(sorted(Counter(s["reason"] for s in skipped).items())),
        "failed_by_reason": dict(sorted(Counter(f["reason"] for f in failures).items())),
        "skipped": skipped,
        "failures": failures,
    }
    assert report["rows_in"] == (
        report["rows_skipped"] + report["already_present"] + report["downloaded"] + report["failed"]
    )
    write_json(report_path or out_dir.parent / "download_report.json", report)
    log.info(
        "download: %d downloaded, %d already present, %d failed %s, %d rows skipped %s",
        report["downloaded"],
        report["already_present"],
        report["failed"],
        report["failed_by_reason"],
        report["rows_skipped"],
        report["skipped_by_reason"],
    )
    return report

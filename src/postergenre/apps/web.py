"""serve: a local web page that explains a model's genres for a poster you give it.

`postergenre serve --model DIR [--port N]` listens on 127.0.0.1 (the port: 8000 by default, 0
for any free one) and serves, from this process alone (no CDN, web fonts or analytics: the page
is one HTML document with its style and script inline):

- `/`: drag a poster onto the page or pick one; it shows every genre's score as a bar with the
  genre's tuned threshold marked, the genres the model names, the heat map of the genre you
  click (`postergenre explain`'s Grad-CAM) and the nearest training posters;
- `/browse`: the test split, each poster with its true genres against the predicted ones.

Uploads are read whole up to 20 MB and decoded as the pipeline decodes posters: anything that is
not a usable raster image (text, SVG, a truncated JPEG, a header claiming more pixels than
`resize.max_pixels`) is answered with the reason, and the server goes on serving. Requests are
served on threads; the model is used by one at a time.

What a request may be, checked before its body is read: a POST says its length (411 without
Content-Length or with a chunked body; 400 for a length that is not a number of bytes; 413 over
the cap, the connection then closed unread); a request must arrive within `--timeout` seconds
(408); the Host header must name the address the server listens on (403 otherwise: a page
elsewhere cannot reach it through a DNS name pointed at 127.0.0.1). Every request is logged in
one line: method, path, status, bytes sent, milliseconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

from postergenre.apps.explain import CACHE, THUMB, Explainer
from postergenre.apps.predict import training_warning
from postergenre.core import dataset
from postergenre.core.images import PosterError
from postergenre.methods.heatmaps import overlay, png_bytes

log = logging.getLogger(__name__)

MAX_UPLOAD = 20 * 2**20  # bytes
TIMEOUT = 10.0  # seconds a request's headers or body may take to arrive
KEEP = 64  # explanations kept for their heat maps


class App:
    """The model, its explainer and what the pages ask for, shared by the request threads."""

    def __init__(self, model_dir: str | Path, cache: Path | None = None):
        self.explainer = Explainer(model_dir, cache=cache or CACHE)
        self.warning = training_warning(model_dir, self.explainer.model.trained_on)
        self.lock = threading.Lock()  # torch and the explainer: one request at a time
        self.recent: OrderedDict[str, Any] = OrderedDict()
        self._test: list[dict[str, Any]] | None = None

    # -- uploads -------------------------------------------------------------------------------
    def explain_upload(self, data: bytes, name: str) -> dict[str, Any]:
        """Scores, thresholds, decisions and neighbours of one uploaded poster; PosterError for
        an unusable one."""
        with tempfile.NamedTemporaryFile(suffix=".upload") as f:
            f.write(data)
            f.flush()
            with self.lock:
                e = self.explainer.explain(f.name, name=name, cam_genres="all")
        key = uuid.uuid4().hex
        with self.lock:
            self.recent[key] = e
            while len(self.recent) > KEEP:
                self.recent.popitem(last=False)
        out = self.explainer.as_json(e)
        genres = self.explainer.genres
        order = np.argsort(-e.scores, kind="stable")
        return {
            "id": key,
            "method": out["method"],
            "poster": name,
            "rows": [
                {
                    "genre": genres[j],
                    "index": int(j),
                    "score": float(e.scores[j]),
                    "threshold": float(self.explainer.thresholds[j]),
                    "named": bool(e.decided[j]),
                }
                for j in order
            ],
            "genres": out["genres"],
            "top_k": out["top_k"],
            "heat_maps": bool(e.cams),
            "neighbour_space": out["neighbour_space"],
            "neighbours": out["neighbours"],
            "neighbours_note": out.get("neighbours_note", ""),
        }

    def heat_map(self, key: str, genre: int | None) -> bytes | None:
        with self.lock:
            e = self.recent.get(key)
        if e is None:
            return None
        cam = e.cams.get(genre) if genre is not None else None
        if genre is not None and cam is None:
            return None
        return png_bytes(overlay(e.image, cam, e.cam_region))

    # -- the repository's posters --------------------------------------------------------------
    def picture(self, movie_id: str) -> bytes | None:
        posters = self.explainer.posters
        pic = posters.picture(movie_id) if posters is not None else None
        return None if pic is None else png_bytes(pic.resize(THUMB))

    def test_split(self) -> list[dict[str, Any]]:
        """Every test poster's true and predicted genres (scored once, on first use)."""
        with self.lock:
            if self._test is None:
                model = self.explainer.model
                genres = dataset.read_genres()  # the working directory's data/, as the stages
                data = model.inputs("test", genres)
                decided = model.decide(model.predict_proba(data.X))
                titles = self.explainer.posters.titles if self.explainer.posters else {}
                self._test = [
                    {
                        "id": i,
                        "title": titles.get(i, ""),
                        "true": [genres[j] for j in np.flatnonzero(y)],
                        "predicted": [genres[j] for j in np.flatnonzero(d)],
                    }
                    for i, y, d in zip(data.ids, data.Y, decided, strict=True)
                ]
            return self._test


class Handler(BaseHTTPRequestHandler):
    server_version = "postergenre"
    app: App  # set on the class made per server
    hosts: frozenset[str] | None  # the Host values taken; None: any (listening on every address)
    timeout = TIMEOUT  # the socket's (socketserver's): a request that stalls ends in a timeout
    default_request_version = "HTTP/1.0"  # so a request line that does not parse gets a status

    def handle_one_request(self) -> None:
        """One request, then its log line (a connection that closes unasked logs nothing)."""
        self._status: int | str | None = None
        self._started, self._sent = time.perf_counter(), 0
        super().handle_one_request()  # a request line or headers that stall: closed there
        if self._status is not None:
            # a request line that did not parse sets neither command nor path
            log.info(
                "%s %s %s %d B %.0f ms",
                getattr(self, "command", None) or "-",
                (getattr(self, "path", None) or "-")[:200],
                self._status,
                self._sent,
                1000 * (time.perf_counter() - self._started),
            )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self._status = int(code) if str(code).isdigit() else code  # logged whole, once, above

    def log_message(self, fmt: str, *args) -> None:  # http.server's own lines: the debug log
        log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
            self._sent = len(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _refuse(self, status: int, message: str) -> None:
        """An answer before the body is read: the connection closes, so what follows the
        headers is never taken for another request."""
        self.close_connection = True
        self._error(status, message)

    def parse_request(self) -> bool:
        """http.server's parsing, then the Host check, for every method alike."""
        if not super().parse_request():
            return False
        host = self.headers.get("Host", "")
        if self.hosts is None or host.lower() in self.hosts:
            return True
        self._refuse(403, f"Host {host[:100]!r} is not this server's address (open {sorted(self.hosts)[0]})")
        return False

    def do_GET(self) -> None:  # noqa: N802 (the http.server interface)
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            if url.path in ("/", "/index.html"):
                self._send(200, PAGE.encode("utf-8"), "text/html; charset=utf-8")
            elif url.path == "/browse":
                self._send(200, BROWSE.encode("utf-8"), "text/html; charset=utf-8")
            elif url.path == "/api/model":
                m = self.app.explainer.model
                self._json(
                    200,
                    {
                        "method": m.method,
                        "genres": m.genres,
                        "trained_on": m.trained_on,
                        "warning": self.app.warning,
                    },
                )
            elif parts[:2] == ["api", "heatmap"] and len(parts) == 4:
                genre = None if parts[3] == "poster" else int(parts[3])
                png = self.app.heat_map(parts[2], genre)
                if png is None:
                    self._error(
                        404, f"no such explanation or genre (the server keeps the last {KEEP} uploads)"
                    )
                else:
                    self._send(200, png, "image/png")
            elif parts[:2] == ["api", "poster"] and len(parts) == 3:
                png = self.app.picture(parts[2].removesuffix(".png"))
                if png is None:
                    self._error(404, "no such poster in this repository's data")
                else:
                    self._send(200, png, "image/png")
            elif url.path == "/api/test":
                query = parse_qs(url.query)
                offset = max(0, int(query.get("offset", ["0"])[0]))
                limit = min(200, max(1, int(query.get("limit", ["48"])[0])))
                rows = self.app.test_split()
                self._json(200, {"total": len(rows), "offset": offset, "rows": rows[offset : offset + limit]})
            else:
                self._error(404, f"nothing at {url.path}")
        except (ValueError, FileNotFoundError) as exc:
            self._error(400, str(exc))

    def do_POST(self) -> None:  # noqa: N802
        if urlparse(self.path).path != "/api/explain":
            self._refuse(404, f"nothing to post at {self.path[:200]}")
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._refuse(411, "the upload must say its length (Content-Length), not be chunked")
            return
        given = self.headers.get("Content-Length")
        if given is None:
            self._refuse(411, "the upload must say its length (Content-Length)")
            return
        if not given.strip().isdigit():
            self._refuse(400, f"Content-Length {given[:40]!r} is not a number of bytes")
            return
        length = int(given)
        if length > MAX_UPLOAD:
            self._refuse(
                413, f"the file is {length / 2**20:.1f} MB; posters up to {MAX_UPLOAD // 2**20} MB are taken"
            )
            return
        if length == 0:
            self._error(400, "the file is empty")
            return
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            self._refuse(408, f"the upload did not arrive within {self.timeout:g} s")
            return
        if len(data) < length:
            self._refuse(400, f"the upload ended after {len(data)} of {length} bytes")
            return
        name = unquote(self.headers.get("X-Filename", "upload"))[:200]
        try:
            result = self.app.explain_upload(data, name)
        except PosterError as exc:
            self._error(422, f"{name} is not a poster we can read ({exc.reason}): {exc.detail}")
            return
        except Exception as exc:  # a model failure on one poster: reported, the server goes on
            log.exception("explaining %s failed", name)
            self._error(500, f"explaining {name} failed: {type(exc).__name__}: {exc}")
            return
        self._json(200, result)


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The Host headers that name this server: its address and port (and `localhost` for a
    loopback address); None where it listens on every address (its names are not known)."""
    if host in ("", "0.0.0.0", "::"):
        return None
    names = {host, f"[{host}]"} if ":" in host else {host}
    if host.startswith("127.") or host == "::1":
        names |= {"localhost"}
    return frozenset(
        n.lower() + suffix for n in names for suffix in ([f":{port}"] + ([""] if port == 80 else []))
    )


def make_server(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    cache: Path | None = None,
    timeout: float = TIMEOUT,
) -> ThreadingHTTPServer:
    """The server, bound (port 0: a free one) but not yet serving; `cache`: where the neighbour
    index is kept (default .cache/explain); `timeout`: seconds a request may take to arrive."""
    app = App(model_dir, cache=cache)
    handler: type[Handler] = type("BoundHandler", (Handler,), {"app": app, "hosts": None, "timeout": timeout})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    handler.hosts = allowed_hosts(host, server.server_address[1])
    return server


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a model folder (models/METHOD)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free one)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT,
        help=f"seconds a request may take to arrive (default {TIMEOUT:g})",
    )


NEEDS_PARAMS = False


def run(args: argparse.Namespace, params: dict | None = None) -> None:
    server = make_server(args.model, args.host, args.port, timeout=args.timeout)
    host, port = str(server.server_address[0]), server.server_address[1]
    print(f"postergenre: serving {args.model} at http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:10px 18px}header a{color:#b3e5fc;margin-left:14px}
main{padding:16px 18px}#drop{border:2px dashed #90a4ae;border-radius:8px;padding:22px;
text-align:center;background:#fff;cursor:pointer}#drop.over{background:#e1f5fe}
#error{color:#b71c1c;font-weight:600;margin:10px 0;white-space:pre-wrap}
#warning{background:#fff3e0;border-left:4px solid #ef6c00;padding:8px 12px;margin:0 0 12px}
#warning:empty{display:none}
.cols{display:flex;gap:18px;flex-wrap:wrap;margin-top:14px}
.row{display:flex;align-items:center;gap:8px;cursor:pointer;padding:1px 0}
.row .name{width:120px;font-size:13px}.row.named .name{font-weight:700}
.track{position:relative;width:260px;height:14px;background:#eceff1;border-radius:2px}
.bar{position:absolute;left:0;top:0;height:14px;background:#90a4ae;border-radius:2px}
.named .bar{background:#c62828}.threshold{position:absolute;top:-3px;width:2px;height:20px;
background:#000}.row.chosen{outline:2px solid #0277bd}.val{font-size:12px;width:38px}
#heat{width:240px;height:360px;background:#eee}.nb{display:inline-block;width:110px;
font-size:11px;margin:0 8px 8px 0;vertical-align:top}.nb img{width:100px;height:150px}
.named-list{font-size:18px;margin:8px 0}.poster{display:inline-block;width:150px;
font-size:11px;margin:0 10px 12px 0;vertical-align:top}.poster img{width:100px;height:150px}
.hit{color:#2e7d32;font-weight:600}.miss{color:#b71c1c}
"""

PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>postergenre</title>
<style>"""
    + _STYLE
    + """</style></head><body>
<header><b>postergenre</b> <span id="method"></span><a href="/">a poster</a>
<a href="/browse">the test split</a></header>
<main>
<div id="warning" role="note"></div>
<div id="drop">Drop a poster here, or <label><u>pick a file</u>
<input id="file" type="file" accept="image/*" hidden></label></div>
<div id="status"></div><div id="error" role="alert"></div>
<div id="result" hidden>
<div class="named-list">Named: <span id="named"></span></div>
<div class="cols">
<div><div id="rows"></div><p style="font-size:12px">Bar: score; black mark: the genre's tuned
threshold (raised by the operating point); red: named. Click a genre for its heat map.</p></div>
<div><div id="heat-title"></div><img id="heat" alt="heat map"></div>
</div>
<h3>Nearest training posters <small id="space"></small></h3><div id="neighbours"></div>
</div></main>
<script>
const $ = (id) => document.getElementById(id);
fetch('/api/model').then(r => r.json()).then(m => { $('method').textContent = m.method;
  $('warning').textContent = m.warning || ''; });
function chooseGenre(result, row) {
  document.querySelectorAll('.row').forEach(el =>
    el.classList.toggle('chosen', el.dataset.index == row.index));
  $('heat-title').textContent = result.heat_maps ? row.genre + ' (heat map)' : 'the poster';
  $('heat').src = '/api/heatmap/' + result.id + '/' + (result.heat_maps ? row.index : 'poster');
}
function show(result) {
  $('result').hidden = false;
  $('named').textContent = result.genres.join(', ') || '(none)';
  const rows = $('rows'); rows.innerHTML = '';
  for (const row of result.rows) {
    const el = document.createElement('div');
    el.className = 'row' + (row.named ? ' named' : ''); el.dataset.index = row.index;
    el.innerHTML = '<span class="name"></span><span class="track"><span class="bar"></span>' +
      '<span class="threshold"></span></span><span class="val"></span>';
    el.querySelector('.name').textContent = row.genre;
    el.querySelector('.bar').style.width = (100 * row.score).toFixed(1) + '%';
    el.querySelector('.threshold').style.left = (100 * row.threshold).toFixed(1) + '%';
    el.querySelector('.threshold').title = 'threshold ' + row.threshold.toFixed(2);
    el.querySelector('.val').textContent = row.score.toFixed(2);
    el.onclick = () => chooseGenre(result, row);
    rows.appendChild(el);
  }
  chooseGenre(result, result.rows[0]);
  $('space').textContent = result.neighbour_space ? '(' + result.neighbour_space + ')' : '';
  const nb = $('neighbours'); nb.innerHTML = '';
  if (!result.neighbours.length) nb.textContent = result.neighbours_note || 'none';
  for (const n of result.neighbours) {
    const el = document.createElement('div'); el.className = 'nb';
    const value = 'similarity' in n ? 'similarity ' + n.similarity.toFixed(2)
                                    : 'distance ' + n.distance.toFixed(2);
    el.innerHTML = '<img alt=""><div></div>';
    el.querySelector('img').src = '/api/poster/' + encodeURIComponent(n.id) + '.png';
    el.querySelector('div').textContent = n.title + ' - ' + n.genres.join(', ') + ' - ' + value;
    nb.appendChild(el);
  }
}
async function upload(file) {
  $('error').textContent = '';
  if (file.size > __MAX_UPLOAD__) {  // the server refuses it unread: say why here
    $('error').textContent = 'the file is ' + (file.size / 1048576).toFixed(1)
      + ' MB; posters up to ' + (__MAX_UPLOAD__ / 1048576) + ' MB are taken';
    return;
  }
  $('status').textContent = 'scoring ' + file.name + '...';
  try {
    const r = await fetch('/api/explain', {method: 'POST', body: file,
      headers: {'X-Filename': encodeURIComponent(file.name).slice(0, 200)}});
    const body = await r.json();
    $('status').textContent = '';
    if (!r.ok) { $('error').textContent = body.error; return; }
    show(body);
  } catch (err) {
    $('status').textContent = ''; $('error').textContent = 'upload failed: ' + err;
  }
}
$('file').onchange = (ev) => { if (ev.target.files[0]) upload(ev.target.files[0]); };
const drop = $('drop');
drop.ondragover = (ev) => { ev.preventDefault(); drop.classList.add('over'); };
drop.ondragleave = () => drop.classList.remove('over');
drop.ondrop = (ev) => { ev.preventDefault(); drop.classList.remove('over');
  if (ev.dataTransfer.files[0]) upload(ev.dataTransfer.files[0]); };
</script></body></html>
""".replace("__MAX_UPLOAD__", str(MAX_UPLOAD))
)

BROWSE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>postergenre: test split</title>
<style>"""
    + _STYLE
    + """</style></head><body>
<header><b>postergenre</b> the test split: true against predicted genres<a href="/">a poster</a>
</header><main><div id="error" role="alert"></div><div id="summary"></div><div id="grid"></div>
<button id="more" hidden>more</button></main>
<script>
const $ = (id) => document.getElementById(id);
let offset = 0;
async function more() {
  const r = await fetch('/api/test?offset=' + offset + '&limit=48');
  const body = await r.json();
  if (!r.ok) { $('error').textContent = body.error; return; }
  $('summary').textContent = body.total + ' test posters; green: predicted and true, red: ' +
    'predicted but not true, grey: true but missed';
  for (const p of body.rows) {
    const el = document.createElement('div'); el.className = 'poster';
    el.innerHTML = '<img alt=""><div class="t"></div><div class="p"></div><div class="m"></div>';
    el.querySelector('img').src = '/api/poster/' + encodeURIComponent(p.id) + '.png';
    el.querySelector('.t').textContent = p.title;
    const pred = el.querySelector('.p');
    for (const g of p.predicted) {
      const s = document.createElement('span'); s.textContent = g + ' ';
      s.className = p.true.includes(g) ? 'hit' : 'miss'; pred.appendChild(s);
    }
    el.querySelector('.m').textContent = p.true.filter(g => !p.predicted.includes(g)).join(' ');
    el.querySelector('.m').style.color = '#777';
    $('grid').appendChild(el);
  }
  offset += body.rows.length;
  $('more').hidden = offset >= body.total;
}
$('more').onclick = more;
more();
</script></body></html>
"""
)

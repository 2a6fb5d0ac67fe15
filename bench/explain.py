"""Benchmark: what an explanation costs against a prediction, per poster, on the same posters in
the same run: `predict`'s work for one poster (decode, resize, score, decide), `explain`'s (the
same plus Grad-CAM of the named genres and the nearest training posters), and the web page's
upload-to-result (an HTTP upload to `serve` on 127.0.0.1, every genre's heat map computed, the
JSON back, then the first heat map's PNG, as the page fetches it). Medians; each a ratio
against predict's (timed in blocks: predict, explain, page, predict again). Run it in a
repository after `dvc repro` (real posters: the movielens run).

    python bench/explain.py [--model models/head] [--n 40]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from postergenre.core import dataset, paths
from postergenre.data.sources import posters_root
from postergenre.methods.params import load


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    from postergenre.apps.explain import Explainer
    from postergenre.apps.web import make_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/head")
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args()
    params = load()
    poster_of = dataset.read_poster_paths(posters_root(params["data"]))
    ids = (paths.split() / "test.txt").read_text(encoding="utf-8").split()[: args.n]
    posters = [poster_of[i] for i in ids]
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        explainer = Explainer(args.model, cache=Path(cache))
        print(
            f"loading {args.model} and indexing its training posters: "
            f"{time.perf_counter() - start:.1f} s (once per model folder)"
        )
        model, reader = explainer.model, explainer.reader

        def predict_one(path):
            _, arrays = reader.read(path)
            sized = {s: a[None] for s, a in zip(reader.sizes, arrays, strict=True)}
            model.decide(model.predict_proba(model.inputs_from_sized_posters(sized)))

        server = make_server(args.model, port=0, cache=Path(cache))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        host, port = server.server_address[:2]

        def page_one(path):
            conn = http.client.HTTPConnection(host, port, timeout=120)
            conn.request("POST", "/api/explain", body=path.read_bytes(), headers={"X-Filename": path.name})
            answer = json.loads(conn.getresponse().read())
            conn.request("GET", f"/api/heatmap/{answer['id']}/{answer['rows'][0]['index']}")
            conn.getresponse().read()
            conn.close()

        runs = {
            "predict": predict_one,
            "explain": lambda p: explainer.explain(p, cam_genres="decided"),
            "page": page_one,
        }
        for fn in runs.values():
            fn(posters[0])  # warm-up
        for path in posters:
            path.read_bytes()  # every file in the page cache: no one pays for the disk
        # In blocks (each step's cost depends on what ran just before it: the CPU's caches and
        # torch's allocator), predict before and after the others, so drift shows in its spread.
        times: dict[str, list[float]] = {name: [] for name in runs}
        for name in ("predict", "explain", "page", "predict"):
            times[name] += [_timed(lambda p=path, fn=runs[name]: fn(p)) for path in posters]
        server.shutdown()
        server.server_close()
    ref = statistics.median(times["predict"])
    print(f"{len(posters)} posters, {model.method}; median per poster:")
    for name, what in [
        ("predict", "decode, resize, score, decide"),
        ("explain", "+ heat maps of the named genres + 6 nearest posters"),
        ("page", "upload -> JSON with every genre's map -> first heat map PNG"),
    ]:
        m = statistics.median(times[name])
        print(f"  {name:8s} {1000 * m:7.1f} ms  {m / ref:5.2f}x predict  ({what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

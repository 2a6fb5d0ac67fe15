"""explain (Grad-CAM heat maps, nearest training posters) and serve (the local web page, its bad
uploads, concurrency, and a real headless Chromium driving it), on the shared pipeline run."""

from __future__ import annotations

import http.client
import importlib.util
import io
import json
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from postergenre.apps import cli
from postergenre.apps import explain as ex
from postergenre.core.dataset import read_genres
from postergenre.methods import heatmaps as hm
from tests.conftest import chromium

ROOT = Path(__file__).resolve().parent.parent


def test_grad_cam_lights_the_region_a_genre_reads():
    # channel 0 is active in the top-left corner only, channel 1 in the bottom-right only;
    # the logits read them through global average pooling, as the networks do
    A = torch.zeros(1, 2, 6, 6)
    A[0, 0, :2, :2] = torch.rand(2, 2) + 0.5
    A[0, 1, 4:, 4:] = torch.rand(2, 2) + 0.5
    A.requires_grad_(True)
    pooled = A.mean(dim=(2, 3))[0]
    logits = torch.stack([2 * pooled[0], pooled[1] - 3 * pooled[0]])[None]
    cams = hm.grad_cam(A, logits, [0, 1])
    assert cams[0].shape == (6, 6) and cams[0].max() == pytest.approx(1.0)
    assert cams[0][:2, :2].min() > 0 and cams[0].sum() == pytest.approx(cams[0][:2, :2].sum())
    # genre 1 is raised by the bottom-right and lowered by the top-left: only the first shows
    assert cams[1][4:, 4:].min() > 0 and cams[1][:4, :].max() == 0
    # a genre that nothing raises gets an empty map, not a division by zero
    flat = hm.grad_cam(A, (A.sum() * 0)[None, None], [0])
    assert not np.any(flat[0])


def test_head_explanation_matches_predict_and_finds_itself(project, tmp_path, monkeypatch):
    from postergenre.apps.predict import predict_posters

    monkeypatch.chdir(project)
    train_id = (project / "data/split/train.txt").read_text().split()[0]
    poster = project / f"data/raw/synthetic/posters/{train_id}.jpg"
    explainer = ex.Explainer("models/head", cache=tmp_path / "cache")
    e = explainer.explain(poster, cam_genres="all")
    predicted = predict_posters("models/head", [poster])["predictions"][0]
    # the scores are predict's own, and what is named is what predict names
    assert dict(zip(explainer.genres, np.round(e.scores, 6), strict=True)) == pytest.approx(
        predicted["scores"], abs=1e-6
    )
    assert [explainer.genres[j] for j in np.flatnonzero(e.decided)] == predicted["genres"]
    assert sorted(e.cams) == list(range(len(explainer.genres)))
    for cam in e.cams.values():
        assert cam.shape == (7, 7) and 0 <= cam.min() and cam.max() <= 1
    assert any(cam.max() == pytest.approx(1.0) for cam in e.cams.values())
    # a training poster's nearest training poster is itself
    assert len(e.neighbours) == ex.NEIGHBOURS
    assert e.neighbours[0]["id"] == train_id and e.neighbours[0]["similarity"] > 0.999
    sims = [n["similarity"] for n in e.neighbours]
    assert sims == sorted(sims, reverse=True)
    # the index is built once per model folder: a second explainer reads it back
    cached = list((tmp_path / "cache").glob("head-*.npz"))
    assert len(cached) == 1

    def no_features(*_a, **_k):
        raise AssertionError("the index was rebuilt")

    again = ex.Explainer("models/head", cache=tmp_path / "cache")
    monkeypatch.setattr(again.model, "inputs", no_features)
    assert again.index is not None and again.index.ids == explainer.index.ids


def test_explain_command_writes_a_picture_per_poster(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    train_ids = (project / "data/split/train.txt").read_text().split()
    posters = [project / f"data/raw/synthetic/posters/{i}.jpg" for i in train_ids[:2]]
    text = tmp_path / "notes.jpg"
    text.write_text("not a poster")
    for method in ("custom", "mlknn"):
        out = tmp_path / method
        assert (
            cli.main(
                ["explain", "--model", f"models/{method}", *map(str, posters), str(text), "--out", str(out)]
            )
            == 0
        )
        result = json.loads((out / "explain.json").read_text())
        assert [e["png"] for e in result["explanations"]] == [f"{i}.png" for i in train_ids[:2]]
        for e in result["explanations"]:
            with Image.open(out / e["png"]) as picture:
                assert picture.width > 400 and picture.height > 300
        assert result["errors"] == [
            {"poster": str(text), "reason": "not_an_image", "detail": "no image format recognised"}
        ]
        first = result["explanations"][0]
        if method == "custom":  # heat maps of what it names, no neighbour search
            assert set(first["heat_maps"]) == set(
                first["genres"] or [max(first["scores"], key=first["scores"].get)]
            )
            assert first["neighbours"] == [] and "searches no neighbours" in first["neighbours_note"]
        else:  # ML-kNN's neighbours are its own: the training poster itself at distance 0
            assert first["heat_maps"] == {}
            assert first["neighbours"][0]["id"] == train_ids[0]
            assert first["neighbours"][0]["distance"] == pytest.approx(0, abs=1e-3)
            assert "pixels at 64x64" in first["neighbour_space"]


# -- the web page ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(project, tmp_path_factory):
    """`postergenre serve` on a free port of 127.0.0.1 with the head model, stopped after."""
    import os

    from postergenre.apps.web import make_server

    cwd = os.getcwd()
    os.chdir(project)
    try:
        srv = make_server("models/head", port=0, cache=tmp_path_factory.mktemp("cache"))
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        yield srv
        srv.shutdown()
        srv.server_close()
    finally:
        os.chdir(cwd)


def _post(srv, body: bytes, name: str = "poster.jpg", timeout: float = 120):
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/api/explain", body=body, headers={"X-Filename": name})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (its pixel data is a stub)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def test_bad_uploads_get_reasons_and_the_server_goes_on(server, project):
    good = (project / "data/raw/synthetic/posters/1.jpg").read_bytes()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="30"><rect/></svg>'
    cases = {
        "notes.txt": (b"just some text\n" * 10, 422, "not_an_image"),
        "cut.jpg": (good[: len(good) // 3], 422, "decode_error"),
        "huge.png": (_png_header(40000, 40000), 422, "too_many_pixels"),
        "drawing.svg": (svg, 422, "not_an_image"),
        "empty.jpg": (b"", 400, "empty"),
    }
    for name, (body, status, words) in cases.items():
        got, answer = _post(server, body, name)
        assert got == status, (name, answer)
        assert words in answer["error"], (name, answer)
    status, answer = _post(server, good)  # still serving, and right
    assert status == 200 and answer["rows"] and answer["heat_maps"]


def test_twenty_concurrent_uploads_are_all_answered(server, project):
    posters = sorted((project / "data/raw/synthetic/posters").glob("*.jpg"))[:20]
    bodies = [p.read_bytes() for p in posters]
    assert len(bodies) == 20
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda b: _post(server, b), bodies))
    assert [status for status, _ in answers] == [200] * 20
    # each answer is its own poster's: the same poster twice gives the same scores
    status, again = _post(server, bodies[3])
    assert [r["score"] for r in again["rows"]] == [r["score"] for r in answers[3][1]["rows"]]
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request("GET", f"/api/heatmap/{again['id']}/{again['rows'][0]['index']}")
    heat = conn.getresponse()
    assert heat.status == 200 and heat.getheader("Content-Type") == "image/png"
    with Image.open(io.BytesIO(heat.read())) as picture:
        assert picture.size == hm.DISPLAY
    conn.request("GET", "/api/test?limit=500")
    test = json.loads(conn.getresponse().read())
    assert test["total"] == len((project / "data/split/test.txt").read_text().split())
    assert all(set(r) == {"id", "title", "true", "predicted"} for r in test["rows"])
    conn.close()


def _page_tool():
    spec = importlib.util.spec_from_file_location("page_screenshot", ROOT / "tools" / "page_screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_real_browser_uploads_a_poster_and_sees_why(server, project, tmp_path):
    tool = _page_tool()
    chromium()  # present, or the test fails (make test, CI) or skips (bare pytest) naming it
    host, port = server.server_address[:2]
    base = f"http://{host}:{port}/"
    shot = tmp_path / "serve.jpg"
    shown = tool.drive(base, project / "data/raw/synthetic/posters/1.jpg", shot, browse=True)
    genres = read_genres(project / "data/interim")
    assert sorted(shown["rows"]) == sorted(genres)  # every genre's bar
    assert shown["thresholds"] == len(genres)  # and its threshold mark
    assert shown["heat_map_width"] == hm.DISPLAY[0] and "(heat map)" in shown["heat_title"]
    assert shown["neighbours"] == ex.NEIGHBOURS and shown["error"] == ""
    assert shown["named"] and shown["named"] != "(none)"
    assert "synthetic posters" in shown["warning"] and "never saw a real one" in shown["warning"]
    # every request the page made stayed on this server: no CDN, font or analytics
    assert len(shown["requests"]) >= 3
    assert all(url.startswith(base) for url in shown["requests"]), shown["requests"]
    assert 0 < shot.stat().st_size < 300 * 1024
    # the second view: the test split's first page, every poster's picture loaded
    n_test = len((project / "data/split/test.txt").read_text().split())
    browse = shown["browse"]
    assert browse["posters"] == browse["pictures"] == min(n_test, 48) and browse["error"] == ""
    assert browse["summary"].startswith(f"{n_test} test posters")


def test_genre_maps_stage_shows_the_best_methods_top_posters(project):
    from postergenre.core.dataset import label_matrix, read_labels
    from postergenre.methods import estimator_class, specs
    from postergenre.pipeline.genre_maps import precision_at_ranks

    assert precision_at_ranks(np.array([1, 0, 1, 1])) == [1.0, 0.5, 0.6667, 0.75]
    result = json.loads((project / "plots/genres/genres.json").read_text())
    maps = {
        m: json.loads((project / f"metrics/{m}.json").read_text())["mAP"]
        for m in specs()
        if estimator_class(m).has_heatmaps and (project / f"metrics/{m}.json").is_file()
    }
    assert result["method"] == max(maps, key=maps.get)
    genres = read_genres(project / "data/interim")
    labels = read_labels(project / "data/interim")
    test_ids = set((project / "data/split/test.txt").read_text().split())
    assert [row["genre"] for row in result["genres"]] == genres
    for j, row in enumerate(result["genres"]):
        top = row["top"]
        assert len(top) == result["ranks"] and {t["id"] for t in top} <= test_ids
        assert [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)
        truth = label_matrix([labels[t["id"]] for t in top], genres)[:, j]
        assert [t["has_genre"] for t in top] == truth.astype(bool).tolist()
        assert row["precision_at_ranks"] == precision_at_ranks(truth)
    with Image.open(project / "plots/genres/genres.png") as picture:
        assert picture.height > 100 * len(genres)

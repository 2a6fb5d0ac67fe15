"""Property-style: damaged posters and metadata rows through ingest and resize.

Real posters (../shared/data) when present, else posters made here, are truncated at random
points and have random bytes flipped; metadata rows get random bytes flipped too. Whatever comes
in, nothing crashes, every row is kept or listed with a reason, and the counts add up.
"""

import csv
import io
import random

import numpy as np
import pytest

from postergenre.core.images import resize_posters
from postergenre.data.ingest import ingest
from tests.conftest import SHARED_DATA, random_image

GENRES = ["Drama", "Comedy", "Action", "Horror", "Romance", "Thriller"]


def source_posters(n: int, rng: random.Random) -> list[bytes]:
    folder = SHARED_DATA / "movielens-posters" / "posters"
    if folder.is_dir():
        names = sorted(p.name for p in folder.iterdir())
        return [(folder / name).read_bytes() for name in rng.sample(names, n)]
    out = []
    for i in range(n):
        buf = io.BytesIO()
        random_image(60 + i % 7, 90 + i % 5, seed=i).save(buf, "JPEG" if i % 3 else "PNG")
        out.append(buf.getvalue())
    return out


def damage(data: bytes, rng: random.Random) -> bytes:
    """One of: unchanged, truncated, bytes flipped, both, emptied."""
    kind = rng.choice(["same", "truncate", "flip", "both", "empty"])
    data = bytearray(data)
    if kind in ("truncate", "both"):
        data = data[: rng.randrange(0, len(data))]
    if kind in ("flip", "both") and data:
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data) if kind != "empty" else b""


def metadata_line(i: int, rng: random.Random) -> bytes:
    genres = "|".join(rng.sample(GENRES, rng.randint(1, 3)))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([str(i), f"Movie {i}", genres, f"{i}.jpg"])
    line = bytearray(buf.getvalue().encode())
    if rng.random() < 0.4:  # flip a few bytes: quotes, commas, newlines, invalid UTF-8
        for _ in range(rng.randint(1, 4)):
            line[rng.randrange(len(line) - 1)] = rng.choice(b'",|\n\r\x00\xff\xc3 ab')
    return bytes(line)


@pytest.mark.parametrize("seed", range(1, 9))
def test_damaged_posters_and_rows_are_kept_or_reported_never_lost(tmp_path, seed):
    rng = random.Random(seed)
    n = 40
    folder = tmp_path / "source"
    (folder / "posters").mkdir(parents=True)
    for i, data in enumerate(source_posters(n, rng)):
        (folder / "posters" / f"{i}.jpg").write_bytes(damage(data, rng))
    (folder / "movies.csv").write_bytes(
        b"id,title,genres,poster\n" + b"".join(metadata_line(i, rng) for i in range(n))
    )
    data = {
        "source": "csv",
        "path": str(folder),
        "posters": "",
        "poster_key": "imdb_id",
        "poster_ext": ".jpg",
    }

    try:
        report = ingest(data, 1, tmp_path / "interim")
    except ValueError as exc:  # a clear error is allowed only when nothing survived
        assert "no movie survived cleaning" in str(exc)
        return
    assert report["rows_in"] == report["rows_kept"] + report["rows_dropped"]
    assert report["rows_dropped"] == len(report["dropped"])
    assert all(d["reason"] for d in report["dropped"])
    with open(tmp_path / "interim" / "movies.csv", encoding="utf-8", newline="") as f:
        kept = list(csv.DictReader(f))
    assert len(kept) == report["rows_kept"]

    resized = resize_posters(
        [r["id"] for r in kept],
        [folder / "posters" / r["poster"] for r in kept],
        ["16x24"],
        tmp_path / "resized",
        workers=1,
        max_pixels=50_000_000,
    )
    assert resized["posters_in"] == len(kept) == resized["posters_ok"] + resized["posters_rejected"]
    assert all(r["reason"] for r in resized["rejects"])
    with open(tmp_path / "resized" / "manifest.csv", encoding="utf-8", newline="") as f:
        manifest = [row["id"] for row in csv.DictReader(f)]
    rejected = {r["id"] for r in resized["rejects"]}
    assert sorted(manifest + sorted(rejected)) == sorted(r["id"] for r in kept)
    assert np.load(tmp_path / "resized" / "16x24.npy").shape == (len(manifest), 24, 16, 3)

"""Peak memory of ingest and resize on hostile inputs, against the same stage on ordinary ones.

    python bench/hostile.py [--gib 1]

Each stage runs as its own process under /usr/bin/time -v (maximum resident set size) in a
scratch folder: a 1 GiB file of zeros named `.jpg` beside 20 real-sized posters (csv source), and
a TMDB metadata file whose genres field is 4 MB; the reference is the same stage without the
hostile file.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import jpeg_bytes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def peak_mib(cmd: list[str], cwd: Path) -> float:
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{out.stderr[-2000:]}")
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1)) / 1024


def project(root: Path, source: str, path: Path) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(source=source, path=str(path), poster_key="imdb_id")
    params["clean"]["min_genre_count"] = 1
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def csv_source(folder: Path, huge_gib: float) -> Path:
    (folder / "posters").mkdir(parents=True)
    rows = [["id", "title", "genres", "poster"]]
    for i in range(20):
        (folder / "posters" / f"{i}.jpg").write_bytes(jpeg_bytes(500, 750, (i * 10, 90, 200)))
        rows.append([str(i), f"Movie {i}", "Drama", f"{i}.jpg"])
    if huge_gib:
        with open(folder / "posters" / "huge.jpg", "wb") as f:
            f.truncate(int(huge_gib * 2**30))  # a 1 GiB file that is not an image
        rows.append(["99", "Huge", "Drama", "huge.jpg"])
    with open(folder / "movies.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return folder


def tmdb_source(folder: Path, genres_mb: float) -> Path:
    (folder / "posters").mkdir(parents=True)
    header = ["adult", "genres", "id", "imdb_id", "overview", "poster_path", "title"]
    rows = [header]
    for i in range(1, 21):
        (folder / "posters" / f"{i}.jpg").write_bytes(jpeg_bytes(50, 75))
        rows.append(
            ["False", "[{'id': 18, 'name': 'Drama'}]", str(i), f"tt{i:07d}", "x", f"/{i}.jpg", f"M{i}"]
        )
    if genres_mb:
        n = int(genres_mb * 2**20 / len("{'id': 18, 'name': 'Drama'}, "))
        rows.append(
            ["False", repr([{"id": 18, "name": "Drama"}] * n), "99", "tt0000099", "x", "/99.jpg", "Big"]
        )
    with open(folder / "movies_metadata.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--genres-mb", type=float, default=4.0)
    args = parser.parse_args()
    bin_ = Path(sys.executable).parent
    ingest = [str(bin_ / "postergenre"), "ingest", "--out", "data/interim"]
    resize = [str(bin_ / "postergenre"), "resize", "--interim", "data/interim", "--out", "data/resized"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, make, amount in [
            ("1 GiB non-image poster", csv_source, args.gib),
            (f"{args.genres_mb:g} MB genres field", tmdb_source, args.genres_mb),
        ]:
            results = {}
            for label, hostile in (("reference", 0), ("hostile", amount)):
                src = make(tmp / f"{make.__name__}-{label}", hostile)
                root = project(
                    tmp / f"project-{make.__name__}-{label}", "csv" if make is csv_source else "tmdb", src
                )
                results[label] = (peak_mib(ingest, root), peak_mib(resize, root))
            (ri, rr), (hi, hr) = results["reference"], results["hostile"]
            print(
                f"{name}: peak RSS ingest {hi:.0f} MiB (reference {ri:.0f}, x{hi / ri:.2f}), "
                f"resize {hr:.0f} MiB (reference {rr:.0f}, x{hr / rr:.2f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

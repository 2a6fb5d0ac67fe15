"""Publish a run's report under a name: reports/<name>.md and its pictures in docs/<name>/.

`reports/results.md` links the pictures of the run that wrote it (`../plots/<method>/*.png`,
DVC outputs that the next `dvc repro` replaces). For a run worth keeping in git (the movielens
experiment the README quotes), this copies the report and the pictures it shows inline into
`docs/<name>/` (the gallery as JPEG, to stay small), rewrites those links, and leaves the
table of other pictures pointing at `../plots/` with a note that they are the current run's.

    python tools/publish_report.py --run /tmp/movielens-copy --name movielens
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
INLINE = re.compile(r"!\[([^\]]*)\]\(\.\./plots/([^/)]+)/([^/)]+)\.png\)")


def publish(run: Path, name: str, repo: Path = REPO) -> list[Path]:
    text = (run / "reports" / "results.md").read_text(encoding="utf-8")
    out_dir = repo / "docs" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def copy(match: re.Match) -> str:
        alt, method, picture = match.groups()
        source = run / "plots" / method / f"{picture}.png"
        if picture == "gallery":
            target = out_dir / f"{method}-{picture}.jpg"
            Image.open(source).convert("RGB").save(target, "JPEG", quality=85, optimize=True)
        else:
            target = out_dir / f"{method}-{picture}.png"
            shutil.copyfile(source, target)
        written.append(target)
        return f"![{alt}](../docs/{name}/{target.name})"

    text = INLINE.sub(copy, text)
    text = text.replace(
        "| method | precision-recall |",
        "Links below are to the pictures of the last run in this working copy "
        "(`dvc exp apply` the experiment to see its own).\n\n"
        "| method | precision-recall |",
        1,
    )
    maps = genre_maps(run, out_dir, name)
    if maps:
        text += maps
        written.append(out_dir / "genres.jpg")
    report = repo / "reports" / f"{name}.md"
    report.write_text(text, encoding="utf-8")
    return [report, *written]


def genre_maps(run: Path, out_dir: Path, name: str) -> str:
    """The genre-maps stage's figure (as JPEG) and its precision at ranks, as a section."""
    import json

    source = run / "plots" / "genres" / "genres.png"
    if not source.is_file():
        return ""
    Image.open(source).convert("RGB").save(out_dir / "genres.jpg", "JPEG", quality=70, optimize=True)
    result = json.loads((run / "plots" / "genres" / "genres.json").read_text(encoding="utf-8"))
    ranks = result["ranks"]
    rows = [
        f"| {r['genre']} | {r['test_posters_with_genre']} | "
        + " | ".join(f"{p:.2f}" for p in r["precision_at_ranks"])
        + " |"
        for r in result["genres"]
    ]
    return "\n".join(
        [
            "",
            "## What each genre looks like",
            "",
            f"The `genre-maps` stage: for each genre, the {ranks} test posters `{result['method']}` "
            "scores highest for it, with the genre's Grad-CAM heat map (green frame: the poster has "
            "the genre; red: it does not), and the precision at those ranks.",
            "",
            f"![top posters per genre with heat maps](../docs/{name}/genres.jpg)",
            "",
            "| genre | test posters with it | " + " | ".join(f"P@{k}" for k in range(1, ranks + 1)) + " |",
            "|---|---|" + "---|" * ranks,
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="the working copy that ran it")
    parser.add_argument("--name", required=True, help="e.g. movielens")
    args = parser.parse_args()
    for path in publish(args.run, args.name):
        print(f"{path.relative_to(REPO)}  {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()

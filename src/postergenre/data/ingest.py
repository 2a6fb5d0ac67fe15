"""ingest: a source's rows -> the cleaned interim table, its genre vocabulary and a report.

Outputs (one folder, written whole or not at all):
  movies.csv          id, title, genres (pipe-separated, vocabulary only), poster, poster_md5
  genres.json         the vocabulary in model order, with counts
  ingest_report.json  every dropped row with its reason; rows_in = rows_kept + rows_dropped
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections import Counter
from pathlib import Path

from postergenre.core.atomic import atomic_path, write_json
from postergenre.data import cleaning
from postergenre.data.sources import posters_root, read_source

log = logging.getLogger(__name__)


def clean(rows, root: Path, min_genre_count: int):
    """Apply the study's rules in order; return kept records, dropped records, report extras."""
    dropped = list(rows.rejects)
    records = rows.records
    records, bad = cleaning.drop_bad_titles(records)
    dropped += bad
    records, unknown = cleaning.drop_unknown_genres(records, rows.known_genres)
    for rule in (
        cleaning.drop_no_genre,
        lambda r: cleaning.drop_missing_posters(r, root),
        cleaning.drop_duplicate_ids,
        cleaning.drop_duplicate_titles,
    ):
        records, bad = rule(records)
        dropped += bad
    records, bad, rare, vocab = cleaning.drop_rare_genres(records, min_genre_count)
    dropped += bad
    return records, dropped, {"unknown_genres": unknown, "rare_genres": rare, "vocab": vocab}


def file_md5(path: Path) -> str:
    """Streamed (hashlib.file_digest reads in blocks): a huge file costs time, not memory."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def ingest(data: dict, min_genre_count: int, out_dir: str | Path) -> dict:
    """Read `data.source`, clean it, write `out_dir`; return the report."""
    rows = read_source(data)
    root = posters_root(data)
    records, dropped, extra = clean(rows, root, min_genre_count)
    counts = Counter(g for rec in records for g in rec["genres"])
    vocab = extra["vocab"]
    report = {
        "source": data["source"],
        "rows_in": rows.rows_in,
        "rows_kept": len(records),
        "rows_dropped": len(dropped),
        "dropped_by_reason": dict(sorted(Counter(d["reason"] for d in dropped).items())),
        "labels_removed": {
            "unknown_genre": dict(sorted(extra["unknown_genres"].items())),
            "rare_genre": dict(sorted(extra["rare_genres"].items())),
        },
        "min_genre_count": min_genre_count,
        "n_genres": len(vocab),
        "dropped": [{k: d.get(k, "") for k in ("row", "id", "title", "reason", "detail")} for d in dropped],
        # side-file rows (MovieLens links.csv, movies.csv) that could not be used, and why
        "metadata_rows_ignored": rows.ignored,
        "metadata_rows_ignored_by_reason": dict(
            sorted(Counter(f"{i['file']}: {i['reason']}" for i in rows.ignored).items())
        ),
    }
    assert report["rows_in"] == report["rows_kept"] + report["rows_dropped"], "rows lost in ingest"
    out_dir = Path(out_dir)
    refused = out_dir.parent / f"{out_dir.name}_report.refused.json"  # beside the output
    if not records:  # no output; the report says why
        write_json(refused, report)
        raise ValueError(
            f"no movie survived cleaning ({report['rows_in']} rows in, dropped by "
            f"reason: {report['dropped_by_reason']}; each row in {refused}); check "
            "data.source and data.path"
        )
    if refused.exists():  # a refusal's report, out of date now that the source is read
        refused.unlink()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        with open(tmp / "movies.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(("id", "title", "genres", "poster", "poster_md5"))
            for rec in records:
                ordered = sorted(rec["genres"], key=vocab.index)
                # The checksum makes this table change when a poster's bytes do, so the resize
                # stage depends on this table alone instead of re-hashing the posters folder.
                writer.writerow(
                    (
                        rec["id"],
                        rec["title"],
                        "|".join(ordered),
                        rec["poster"],
                        file_md5(root / rec["poster"]),
                    )
                )
        write_json(tmp / "genres.json", {"genres": vocab, "counts": {g: counts[g] for g in vocab}})
        write_json(tmp / "ingest_report.json", report)
    log.info(
        "ingest: %d rows in, %d kept, %d dropped %s",
        report["rows_in"],
        report["rows_kept"],
        report["rows_dropped"],
        report["dropped_by_reason"],
    )
    return report

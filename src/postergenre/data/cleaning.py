"""The study's cleaning rules, one function each.

A movie record is a dict with `id`, `title`, `genres` (list of names), `poster` (path relative to
the posters folder) and `row` (where it came from, for reports). Each rule returns the records it
keeps and the ones it drops, each dropped one tagged with its `reason`, so reports can count them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

Record = dict

# Characters that cannot stand in a file name on some system, each as a readable parenthetical.
_NAME_REPLACEMENTS = {
    "/": "(SL)",
    "\\": "(BSL)",
    "?": "(QM)",
    "*": "(AST)",
    ":": "(COL)",
    '"': "(DQ)",
    "<": "(LT)",
    ">": "(GT)",
    "|": "(VB)",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DOT_RUN = re.compile(r"\.{2,}")
_MAX_NAME_BYTES = 200


def safe_filename(name: str) -> str:
    """A file name that stands alone in one folder: no separators, no `..`, nothing hidden.

    `What's Up, Doc?` -> `What's Up, Doc(QM)`; `../x` -> `(DOT)(DOT)(SL)x`.
    """
    out = "".join(_NAME_REPLACEMENTS.get(ch, ch) for ch in str(name))
    out = _CONTROL.sub("(CTRL)", out)
    # No `..` anywhere, so no later join or split on separators can make a parent reference.
    out = _DOT_RUN.sub(lambda m: "(DOT)" * len(m.group()), out)
    # Leading dots would make `.`, `..` or a hidden file; trailing dots and spaces vanish on Windows.
    stripped = out.lstrip(".")
    out = "(DOT)" * (len(out) - len(stripped)) + stripped
    stem = out.rstrip(". ")
    out = stem + "".join("(DOT)" if c == "." else "(SP)" for c in out[len(stem) :])
    if not out:
        out = "(EMPTY)"
    while len(out.encode("utf-8")) > _MAX_NAME_BYTES:
        out = out[:-1]
    return out


def is_within(root: Path, relative: str) -> bool:
    """True if `root/relative` stays inside `root` (no absolute path, no `..` escape)."""
    if not relative or Path(relative).is_absolute():
        return False
    root = root.resolve()
    target = (root / relative).resolve()
    return target == root or root in target.parents


def _split(records: Iterable[Record], keep) -> tuple[list[Record], list[Record]]:
    kept, dropped = [], []
    for rec in records:
        reason = keep(rec)
        if reason is None:
            kept.append(rec)
        else:
            dropped.append({**rec, "reason": reason})
    return kept, dropped


def drop_bad_titles(records: Iterable[Record]) -> tuple[list[Record], list[Record]]:
    """Drop titles with unidentifiable characters (undecodable bytes read as U+FFFD) or a `/`."""

    def check(rec: Record) -> str | None:
        title = rec["title"]
        if "\ufffd" in title:
            return "title_undecodable"
        if "/" in title:
            return "title_has_slash"
        return None

    return _split(records, check)


def drop_unknown_genres(
    records: Iterable[Record], known: frozenset[str] | None
) -> tuple[list[Record], Counter]:
    """Remove genre names outside the source's vocabulary (and repeats of a name).

    Returns the records and a count of the names removed. `known=None` accepts every name.
    """
    removed: Counter = Counter()
    out = []
    for rec in records:
        good = [g for g in rec["genres"] if known is None or g in known]
        removed.update(g for g in rec["genres"] if known is not None and g not in known)
        out.append({**rec, "genres": list(dict.fromkeys(good))})
    return out, removed


def drop_no_genre(records: Iterable[Record]) -> tuple[list[Record], list[Record]]:
    """Drop movies with no genre (the study could not label them)."""
    return _split(records, lambda rec: None if rec["genres"] else "no_genre")


def drop_missing_posters(records: Iterable[Record], posters_root: Path) -> tuple[list[Record], list[Record]]:
    """Drop movies whose poster path escapes the posters folder or names no file."""

    def check(rec: Record) -> str | None:
        if "\0" in rec["poster"] or not is_within(posters_root, rec["poster"]):
            return "poster_path_unsafe"  # a NUL byte names no file anywhere
        try:
            present = (posters_root / rec["poster"]).is_file()
        except (OSError, ValueError):  # a name the file system refuses (too long, ...)
            present = False
        return None if present else "poster_missing"

    return _split(records, check)


def _keep_first(records: Iterable[Record], field: str, reason: str) -> tuple[list[Record], list[Record]]:
    seen: set[str] = set()

    def check(rec: Record) -> str | None:
        if rec[field] in seen:
            return reason
        seen.add(rec[field])
        return None

    return _split(records, check)


def drop_duplicate_ids(records: Iterable[Record]) -> tuple[list[Record], list[Record]]:
    """Keep the first movie of each id."""
    return _keep_first(records, "id", "duplicate_id")


def drop_duplicate_titles(records: Iterable[Record]) -> tuple[list[Record], list[Record]]:
    """Keep the first of movies with exactly the same title, as the study did."""
    return _keep_first(records, "title", "duplicate_title")


def drop_rare_genres(
    records: Iterable[Record], min_count: int
) -> tuple[list[Record], list[Record], Counter, list[str]]:
    """Genres with fewer than `min_count` movies leave the vocabulary.

    Returns kept records, records left with no genre (dropped), the removed genres' counts, and
    the vocabulary: genre names by descending count, then by name.
    """
    records = list(records)
    counts = Counter(g for rec in records for g in rec["genres"])
    rare = Counter({g: c for g, c in counts.items() if c < min_count})
    vocab = sorted((g for g in counts if g not in rare), key=lambda g: (-counts[g], g))
    trimmed = [{**rec, "genres": [g for g in rec["genres"] if g not in rare]} for rec in records]
    kept, dropped = _split(trimmed, lambda rec: None if rec["genres"] else "only_rare_genres")
    return kept, dropped, rare, vocab

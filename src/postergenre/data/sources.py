"""Source adapters: each turns one raw format into movie records (id, title, genres, poster).

Rows that cannot become a record (wrong field count, missing field, a genres field that is not a
list, no join partner) are returned as rejects with their reason, never raised and never lost.
"""

from __future__ import annotations

import ast
import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from postergenre.core.paths import resolve_data_path
from postergenre.data.cleaning import Record, safe_filename
from postergenre.data.vocab import MOVIELENS_GENRES, MOVIELENS_NO_GENRE, TMDB_GENRES

# The Kaggle file has overviews longer than csv's default 128 KiB field limit in its bad rows;
# a field longer than this one still ends the read with a clear error rather than unbounded
# memory.
FIELD_LIMIT = 8 * 2**20
csv.field_size_limit(FIELD_LIMIT)
# A genres field is a short list; anything longer is rejected before it is parsed (parsing a 4 MB
# literal costs about 2 GB).
GENRES_LIMIT = 64 * 2**10


class SourceError(ValueError):
    """A source cannot be read at all (missing file, missing required column)."""


class GenresTooLong(ValueError):
    """A genres field longer than GENRES_LIMIT: refused unread."""


@dataclass
class SourceRows:
    records: list[Record] = field(default_factory=list)
    rejects: list[Record] = field(default_factory=list)
    known_genres: frozenset[str] | None = None
    # Rows of side files (MovieLens links.csv / movies.csv) that could not be used: no movie is
    # lost by them directly, but each is listed with its reason in the ingest report.
    ignored: list[dict] = field(default_factory=list)

    def ignore(
        self, file: str, row: int, reason: str, detail: str = "", movie_id: str = "", title: str = ""
    ) -> None:
        """A side-file row left out, with the movie it named (movieId, and its title where
        movies.csv has one)."""
        self.ignored.append(
            {"file": file, "row": row, "id": movie_id, "title": title, "reason": reason, "detail": detail}
        )

    @property
    def rows_in(self) -> int:
        return len(self.records) + len(self.rejects)

    def reject(self, row: int, reason: str, detail: str = "", **fields) -> None:
        self.rejects.append(
            {
                "row": row,
                "id": fields.get("id", ""),
                "title": fields.get("title", ""),
                "reason": reason,
                "detail": detail,
            }
        )


def read_csv_rows(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, fields) rows; undecodable bytes become U+FFFD, never an error."""
    if not path.is_file():
        raise SourceError(f"{path}: file not found")
    # utf-8-sig: a byte-order mark (as spreadsheet programs save) is not part of the first column
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
            rows = [(reader.line_num, fields) for fields in reader if fields]
        except StopIteration:
            raise SourceError(f"{path}: empty file (expected a header with {', '.join(required)})") from None
        except csv.Error as exc:
            raise SourceError(
                f"{path}, line {reader.line_num}: {exc} (fields are limited to {FIELD_LIMIT // 2**20} MiB)"
            ) from None
        missing = [c for c in required if c not in header]
        if missing:
            raise SourceError(f"{path}: missing column(s) {', '.join(missing)}; header is {header}")
    return header, rows


def read_csv_source(path: Path, known: frozenset[str] | None = None) -> SourceRows:
    """`movies.csv` with columns id, title, genres (pipe-separated), poster (relative path)."""
    header, rows = read_csv_rows(path, ("id", "title", "genres", "poster"))
    col = {name: header.index(name) for name in ("id", "title", "genres", "poster")}
    out = SourceRows(known_genres=known)
    for line, fields in rows:
        if len(fields) != len(header):
            out.reject(line, "wrong_field_count", f"{len(fields)} fields, header has {len(header)}")
            continue
        rec = {name: fields[i].strip() for name, i in col.items()}
        empty = [name for name in ("id", "title", "poster") if not rec[name]]
        if empty:
            out.reject(line, "missing_field", ", ".join(empty), **rec)
            continue
        genres = [g.strip() for g in rec["genres"].split("|") if g.strip()]
        out.records.append({**rec, "genres": genres, "row": line})
    return out


def parse_tmdb_genres(text: str) -> list[str]:
    """Kaggle's genres field, a Python-literal list of {'id', 'name'} dicts, read as data only.

    Raises ValueError when the field is not such a list, or longer than GENRES_LIMIT.
    """
    if len(text) > GENRES_LIMIT:
        raise GenresTooLong(
            f"{len(text)} characters, more than a genres list ({GENRES_LIMIT}): {text[:60]!r}"
        )
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not a literal list: {text[:60]!r}") from exc
    if not isinstance(value, list):
        raise ValueError(f"not a list: {text[:60]!r}")
    names = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError(f"list item is not a {{'id', 'name'}} dict: {item!r:.60}")
        names.append(item["name"].strip())
    return names


_IMDB_ID = re.compile(r"^tt(\d+)$")
TMDB_POSTER_PATH = re.compile(r"^/[A-Za-z0-9_\-]+\.(?:jpe?g|png)$")


def tmdb_poster_name(row: dict[str, str], key: str, ext: str) -> str:
    """The poster file name the `tmdb` source expects for a metadata row.

    `poster_path`: the path's base name; `imdb_id`: the number without `tt` or leading zeros (as
    the shared posters are named); `tmdb_id`: TMDB's id. Raises ValueError when the key is bad.
    """
    if key == "poster_path":
        value = row.get("poster_path", "").strip()
        if not TMDB_POSTER_PATH.match(value):
            raise ValueError(f"malformed poster_path {value[:60]!r}")
        return safe_filename(value[1:])
    if key == "imdb_id":
        match = _IMDB_ID.match(row.get("imdb_id", "").strip())
        if not match:
            raise ValueError(f"malformed imdb_id {row.get('imdb_id', '')[:30]!r}")
        return safe_filename(f"{int(match.group(1))}{ext}")
    value = row.get("id", "").strip()
    if not value.isdigit():
        raise ValueError(f"malformed tmdb id {value[:30]!r}")
    return safe_filename(f"{int(value)}{ext}")


def read_tmdb(path: Path, poster_key: str, ext: str) -> SourceRows:
    """Kaggle's `movies_metadata.csv` (the study's data)."""
    csv_path = path / "movies_metadata.csv" if path.is_dir() else path
    header, rows = read_csv_rows(csv_path, ("id", "title", "genres", "imdb_id", "poster_path"))
    out = SourceRows(known_genres=TMDB_GENRES)
    for line, fields in rows:
        if len(fields) != len(header):
            # The full file has rows whose overview broke the quoting, shifting every column.
            out.reject(line, "wrong_field_count", f"{len(fields)} fields, header has {len(header)}")
            continue
        row = dict(zip(header, fields, strict=True))
        movie_id, title = row["id"].strip(), row["title"].strip()
        if not movie_id.isdigit():
            out.reject(line, "bad_id", f"id {movie_id[:30]!r} is not a number", title=title)
            continue
        if not title:
            out.reject(line, "missing_field", "title", id=movie_id)
            continue
        try:
            genres = parse_tmdb_genres(row["genres"])
        except GenresTooLong as exc:
            out.reject(line, "genres_too_long", str(exc), id=movie_id, title=title)
            continue
        except ValueError as exc:
            out.reject(line, "genres_not_a_list", str(exc), id=movie_id, title=title)
            continue
        try:
            poster = tmdb_poster_name(row, poster_key, ext)
        except ValueError as exc:
            out.reject(line, "bad_poster_key", str(exc), id=movie_id, title=title)
            continue
        out.records.append({"id": movie_id, "title": title, "genres": genres, "poster": poster, "row": line})
    return out


def read_movielens(path: Path, posters_root: Path) -> SourceRows:
    """MovieLens `movies.csv` + `links.csv` and posters named by IMDb id: one row per poster."""
    if not posters_root.is_dir():
        raise SourceError(f"{posters_root}: posters folder not found")
    _, link_rows = read_csv_rows(path / "links.csv", ("movieId", "imdbId", "tmdbId"))
    header, movie_rows = read_csv_rows(path / "movies.csv", ("movieId", "title", "genres"))
    out = SourceRows(known_genres=MOVIELENS_GENRES)
    movies: dict[str, tuple[str, str]] = {}  # first: the titles that name each ignored row
    for line, fields in movie_rows:
        movie_id = fields[0].strip()
        title = fields[1].strip() if len(fields) > 1 else ""
        if len(fields) != len(header):
            out.ignore(
                "movies.csv",
                line,
                "wrong_field_count",
                f"{len(fields)} fields, header has {len(header)}",
                movie_id,
                title,
            )
        elif movie_id in movies:
            out.ignore(
                "movies.csv",
                line,
                "duplicate_movie_id",
                f"movieId {movie_id} already seen; kept the first row",
                movie_id,
                title,
            )
        else:
            movies[movie_id] = (title, fields[2].strip())
    imdb_to_movie: dict[int, str] = {}
    for line, fields in link_rows:
        movie_id = fields[0].strip()
        title = movies.get(movie_id, ("", ""))[0]
        imdb = fields[1].strip() if len(fields) >= 2 else ""
        if not imdb.isdigit():
            out.ignore(
                "links.csv", line, "bad_imdb_id", f"imdbId {imdb[:30]!r} is not a number", movie_id, title
            )
        elif int(imdb) in imdb_to_movie:
            out.ignore(
                "links.csv",
                line,
                "duplicate_imdb_id",
                f"imdbId {imdb} already names movieId {imdb_to_movie[int(imdb)]}; kept that",
                movie_id,
                title,
            )
        else:
            imdb_to_movie[int(imdb)] = movie_id
    names = sorted(os.listdir(posters_root))
    for line, name in enumerate(names, start=1):
        stem = Path(name).stem
        if not (posters_root / name).is_file():
            out.reject(line, "not_a_file", name)
            continue
        if not stem.isdigit():
            out.reject(line, "bad_poster_name", f"{name!r} is not an IMDb number")
            continue
        found = imdb_to_movie.get(int(stem))
        if found is None:
            out.reject(line, "no_links_row", f"IMDb {stem} is in no row of links.csv", id=stem)
            continue
        movie_id = found
        if movie_id not in movies:
            out.reject(line, "no_movies_row", f"movieId {movie_id} is not in movies.csv", id=movie_id)
            continue
        title, genre_field = movies[movie_id]
        genres = (
            []
            if genre_field == MOVIELENS_NO_GENRE
            else [g.strip() for g in genre_field.split("|") if g.strip()]
        )
        out.records.append({"id": movie_id, "title": title, "genres": genres, "poster": name, "row": line})
    return out


def posters_root(data: dict) -> Path:
    """Where the posters are: `data.posters` if set, else `posters/` beside the source files."""
    if data["posters"]:
        return resolve_data_path(data["posters"])
    path = resolve_data_path(data["path"])
    return (path if path.is_dir() else path.parent) / "posters"


def read_source(data: dict) -> SourceRows:
    """Dispatch on `data.source`."""
    path = resolve_data_path(data["path"])
    if not path.exists():
        where = "" if str(path) == data["path"] else f" (resolved to {path})"
        raise SourceError(f"data.path {data['path']!r} does not exist{where}")
    source = data["source"]
    if source == "synthetic":
        return read_csv_source(path / "movies.csv", known=TMDB_GENRES)
    if source == "csv":
        return read_csv_source(path / "movies.csv" if path.is_dir() else path)
    if source == "tmdb":
        return read_tmdb(path, data["poster_key"], data["poster_ext"])
    if source == "movielens":
        return read_movielens(path, posters_root(data))
    raise SourceError(f"unknown data.source {source!r}")

import csv
import json
from pathlib import Path

import pytest

from postergenre.data.ingest import ingest
from postergenre.data.sources import (
    SourceError,
    parse_tmdb_genres,
    read_movielens,
    read_source,
    tmdb_poster_name,
)
from tests.conftest import shared_data, write_poster

TMDB_HEADER = ["adult", "genres", "id", "imdb_id", "overview", "poster_path", "title"]


def g(*names):
    return repr([{"id": i, "name": n} for i, n in enumerate(names)])


def write_tmdb(folder: Path, rows: list[list[str]], raw_tail: bytes = b"") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "movies_metadata.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(TMDB_HEADER)
        writer.writerows(rows)
    with open(path, "ab") as f:
        f.write(raw_tail)
    return path


def tmdb_data(folder: Path, key: str = "imdb_id") -> dict:
    return {"source": "tmdb", "path": str(folder), "posters": "", "poster_key": key, "poster_ext": ".jpg"}


def test_tmdb_genres_are_parsed_as_data():
    assert parse_tmdb_genres(g("Drama", "Comedy")) == ["Drama", "Comedy"]
    assert parse_tmdb_genres("[]") == []


@pytest.mark.parametrize(
    "text",
    [
        "Drama",
        "{'id': 1, 'name': 'Drama'}",
        "[1, 2]",
        "[{'id': 1}]",
        "",
        "__import__('os').system('echo pwned')",
        "[{'id': 1, 'name': 'Drama'}",
    ],
)
def test_genres_that_are_not_a_list_of_dicts_are_rejected(text):
    with pytest.raises(ValueError):
        parse_tmdb_genres(text)


def test_genres_field_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ValueError):
        parse_tmdb_genres(f"__import__('pathlib').Path({str(marker)!r}).touch()")
    assert not marker.exists()


@pytest.mark.parametrize(
    "key, row, name",
    [
        ("imdb_id", {"imdb_id": "tt0114709"}, "114709.jpg"),
        ("tmdb_id", {"id": "862"}, "862.jpg"),
        (
            "poster_path",
            {"poster_path": "/rhIRbceoE9lR4veEXuwCC2wARtG.jpg"},
            "rhIRbceoE9lR4veEXuwCC2wARtG.jpg",
        ),
    ],
)
def test_tmdb_poster_name_by_key(key, row, name):
    assert tmdb_poster_name(row, key, ".jpg") == name


@pytest.mark.parametrize(
    "row",
    [
        {"poster_path": "/../../etc/passwd"},
        {"poster_path": ""},
        {"poster_path": "x.jpg"},
        {"poster_path": "/a/b.jpg"},
    ],
)
def test_malformed_poster_path_is_refused(row):
    with pytest.raises(ValueError, match="malformed poster_path"):
        tmdb_poster_name(row, "poster_path", ".jpg")


def test_tmdb_bad_rows_end_in_the_report_and_counts_add_up(tmp_path):
    src = tmp_path / "tmdb"
    for n in range(1, 12):
        write_poster(src / "posters" / f"{n}.jpg")
    rows = [
        ["False", g("Drama"), "1", "tt0000001", "fine", "/a.jpg", "Good Movie"],
        ["False", g("Comedy"), "2", "tt0000002", "x", "/b.jpg", "What's Up, Doc?"],
        ["False", g("Drama"), "3", "tt0000003", "x", "/c.jpg", "8 1/2"],
        ["False", g("Drama"), "4", "tt0000004", "x", "/d.jpg", 'Say "Cheese" .. Amélie'],
        ["False", "Drama", "5", "tt0000005", "x", "/e.jpg", "Genres Not A List"],
        ["False", g("Drama"), "6", "tt0000006", "x"],  # too few fields
        ["False", g("Drama"), "1997-08-20", "tt0000007", "x", "/g.jpg", "Shifted"],
        ["False", g("Space Opera"), "8", "tt0000008", "x", "/h.jpg", "Unknown Genre Only"],
        ["False", g("Drama", "Space Opera"), "9", "tt0000009", "x", "/i.jpg", "Mixed Genres"],
        ["False", g("Drama"), "1", "tt0000010", "x", "/j.jpg", "Duplicate Id"],
        ["False", "[]", "11", "tt0000011", "x", "/k.jpg", "No Genre"],
        ["False", g("Drama"), "12", "tt0000012", "x", "/l.jpg", "No Poster File"],
        ["False", g("Drama"), "13", "nm123", "x", "/m.jpg", "Bad Imdb"],
        ["False", g("Comedy"), "14", "tt0000002", "x", "/n.jpg", "What's Up, Doc?"],
    ]
    undecodable = b"False,\"[{'id': 1, 'name': 'Drama'}]\",15,tt0000015,x,/o.jpg,Bad \xff\xfe Bytes\n"
    write_tmdb(src, rows, raw_tail=undecodable)
    out = tmp_path / "interim"
    report = ingest(tmdb_data(src), min_genre_count=1, out_dir=out)
    assert report["rows_in"] == 15
    assert report["rows_in"] == report["rows_kept"] + report["rows_dropped"]
    assert report["dropped_by_reason"] == {
        "bad_id": 1,
        "bad_poster_key": 1,
        "duplicate_id": 1,
        "duplicate_title": 1,
        "genres_not_a_list": 1,
        "no_genre": 2,
        "poster_missing": 1,
        "title_has_slash": 1,
        "title_undecodable": 1,
        "wrong_field_count": 1,
    }
    assert report["labels_removed"]["unknown_genre"] == {"Space Opera": 2}
    with open(out / "movies.csv", encoding="utf-8", newline="") as f:
        kept = {r["id"]: r for r in csv.DictReader(f)}
    assert sorted(kept) == ["1", "2", "4", "9"]
    assert kept["4"]["title"] == 'Say "Cheese" .. Amélie'
    assert kept["9"]["genres"] == "Drama"
    assert json.loads((out / "genres.json").read_text())["genres"] == ["Drama", "Comedy"]
    assert {d["reason"] for d in report["dropped"]} == set(report["dropped_by_reason"])


def test_csv_source_rejects_short_rows_and_missing_fields(tmp_path):
    write_poster(tmp_path / "posters" / "a.jpg")
    (tmp_path / "movies.csv").write_text(
        "id,title,genres,poster\n1,Alpha,Drama|Comedy,a.jpg\n2,Beta,Drama\n3,,Drama,a.jpg\n", encoding="utf-8"
    )
    rows = read_source(
        {"source": "csv", "path": str(tmp_path), "posters": "", "poster_key": "imdb_id", "poster_ext": ".jpg"}
    )
    assert [r["id"] for r in rows.records] == ["1"]
    assert rows.records[0]["genres"] == ["Drama", "Comedy"]
    assert [r["reason"] for r in rows.rejects] == ["wrong_field_count", "missing_field"]


def test_csv_source_without_required_columns_is_a_clear_error(tmp_path):
    (tmp_path / "movies.csv").write_text("id,name\n1,x\n", encoding="utf-8")
    with pytest.raises(SourceError, match="missing column.*genres"):
        read_source(
            {
                "source": "csv",
                "path": str(tmp_path),
                "posters": "",
                "poster_key": "imdb_id",
                "poster_ext": ".jpg",
            }
        )


def test_missing_data_path_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist$"):  # absolute: said once
        read_source(tmdb_data(tmp_path / "nowhere"))


def test_movielens_accounts_for_every_poster(tmp_path):
    for name in ("113228.jpg", "114709.jpg", "999.jpg", "5.jpg", "notanumber.jpg"):
        write_poster(tmp_path / "posters" / name)
    (tmp_path / "links.csv").write_text(
        "movieId,imdbId,tmdbId\n1,0114709,862\n3,0113228,15602\n4,0000005,1\n", encoding="utf-8"
    )
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children\n"
        '3,"Grumpier Old Men, The (1995)",Comedy|Romance\n4,Nothing (2000),(no genres listed)\n',
        encoding="utf-8",
    )
    rows = read_movielens(tmp_path, tmp_path / "posters")
    assert rows.rows_in == 5
    by_id = {r["id"]: r for r in rows.records}
    assert by_id["3"]["title"] == "Grumpier Old Men, The (1995)"
    assert by_id["3"]["poster"] == "113228.jpg"
    assert by_id["4"]["genres"] == []
    assert sorted(r["reason"] for r in rows.rejects) == ["bad_poster_name", "no_links_row"]


def test_movielens_files_saved_with_a_byte_order_mark_and_spaced_genres_are_read(tmp_path):
    write_poster(tmp_path / "posters" / "114709.jpg")
    write_poster(tmp_path / "posters" / "113228.jpg")
    (tmp_path / "links.csv").write_bytes(
        "\ufeffmovieId,imdbId,tmdbId\n1,0114709,862\n3,0113228,15602\n".encode("utf-8")
    )
    (tmp_path / "movies.csv").write_bytes(
        "\ufeffmovieId,title,genres\n1,Toy Story (1995), Adventure | Animation \n"
        "3,Heat (1995),Action|Crime\n".encode("utf-8")
    )
    rows = read_movielens(tmp_path, tmp_path / "posters")
    assert {r["id"]: r["genres"] for r in rows.records} == {
        "1": ["Adventure", "Animation"],
        "3": ["Action", "Crime"],
    }


def test_movielens_side_file_rows_that_cannot_be_used_are_reported(tmp_path):
    for name in ("114709.jpg", "113228.jpg"):
        write_poster(tmp_path / "posters" / name)
    (tmp_path / "links.csv").write_text(
        "movieId,imdbId,tmdbId\n1,0114709,862\n2,tt0113497,8844\n3,0113228,15602\n9,0114709,1\n",
        encoding="utf-8",
    )
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story (1995),Animation\n3,Heat (1995),Action\n"
        "3,Heat again (1995),Drama\n4,Short\n",
        encoding="utf-8",
    )
    data = {
        "source": "movielens",
        "path": str(tmp_path),
        "posters": "",
        "poster_key": "imdb_id",
        "poster_ext": ".jpg",
    }
    report = ingest(data, 1, tmp_path / "interim")
    ignored = {
        (i["file"], i["row"], i["reason"], i["id"], i["title"]) for i in report["metadata_rows_ignored"]
    }
    # each names its movie: the movieId, and the title where movies.csv has one
    assert ignored == {
        ("links.csv", 3, "bad_imdb_id", "2", ""),
        ("links.csv", 5, "duplicate_imdb_id", "9", ""),
        ("movies.csv", 4, "duplicate_movie_id", "3", "Heat again (1995)"),
        ("movies.csv", 5, "wrong_field_count", "4", "Short"),
    }
    assert report["metadata_rows_ignored_by_reason"]["links.csv: bad_imdb_id"] == 1
    assert report["rows_kept"] == 2  # the first rows won; both posters kept


def test_a_malformed_links_row_names_its_movie_and_title(tmp_path):
    write_poster(tmp_path / "posters" / "114709.jpg")
    (tmp_path / "links.csv").write_text(
        "movieId,imdbId,tmdbId\n1,0114709,862\n777777,tt-not-a-number,5\n", encoding="utf-8"
    )
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story (1995),Animation\n777777,Lost Reel (1931),Drama\n",
        encoding="utf-8",
    )
    rows = read_movielens(tmp_path, tmp_path / "posters")
    assert rows.ignored == [
        {
            "file": "links.csv",
            "row": 3,
            "id": "777777",
            "title": "Lost Reel (1931)",
            "reason": "bad_imdb_id",
            "detail": "imdbId 'tt-not-a-number' is not a number",
        }
    ]


def test_a_source_refused_whole_still_writes_its_report(tmp_path):
    write_poster(tmp_path / "src" / "posters" / "1.jpg")
    (tmp_path / "src" / "movies.csv").write_text(
        "id,title,genres,poster\n1,A/B,Drama,1.jpg\n2,Gone,Drama,2.jpg\n", encoding="utf-8"
    )
    data = {
        "source": "csv",
        "path": str(tmp_path / "src"),
        "posters": "",
        "poster_key": "imdb_id",
        "poster_ext": ".jpg",
    }
    with pytest.raises(ValueError, match="no movie survived cleaning") as err:
        ingest(data, 1, tmp_path / "interim")
    refused = tmp_path / "interim_report.refused.json"
    assert str(refused) in str(err.value) and not (tmp_path / "interim").exists()
    report = json.loads(refused.read_text())
    assert report["rows_in"] == 2 and report["rows_kept"] == 0
    assert sorted(d["id"] for d in report["dropped"]) == ["1", "2"]
    # a later run that reads the source removes the refusal's report
    (tmp_path / "src" / "movies.csv").write_text(
        "id,title,genres,poster\n1,A,Drama,1.jpg\n", encoding="utf-8"
    )
    ingest(data, 1, tmp_path / "interim")
    assert not refused.exists() and (tmp_path / "interim" / "ingest_report.json").is_file()


def test_a_huge_tmdb_genres_field_is_rejected_before_it_is_parsed(tmp_path):
    huge = repr([{"id": i, "name": "Drama"} for i in range(200_000)])  # about 5 MB
    write_poster(tmp_path / "posters" / "1.jpg")
    write_poster(tmp_path / "posters" / "2.jpg")
    write_tmdb(
        tmp_path,
        [
            ["False", huge, "1", "tt0000001", "x", "/a.jpg", "Big"],
            ["False", g("Drama"), "2", "tt0000002", "x", "/b.jpg", "Small"],
        ],
    )
    rows = read_source(tmdb_data(tmp_path))
    assert [r["id"] for r in rows.records] == ["2"]
    assert (
        rows.rejects[0]["reason"] == "genres_too_long"
        and "more than a genres list" in rows.rejects[0]["detail"]
    )


def test_a_field_beyond_the_csv_limit_is_a_clear_error_naming_the_line(tmp_path):
    write_tmdb(tmp_path, [["False", g("Drama"), "1", "tt0000001", "x" * (9 * 2**20), "/a.jpg", "T"]])
    with pytest.raises(SourceError, match=r"movies_metadata.csv, line \d+: field larger than"):
        read_source(tmdb_data(tmp_path))


def test_tmdb_sample_matches_1048_real_posters(tmp_path):
    sample = shared_data("tmdb-sample")
    posters = shared_data("movielens-posters") / "posters"
    data = {**tmdb_data(sample), "posters": str(posters)}
    rows = read_source(data)
    assert rows.rows_in == 2996 and not rows.rejects
    assert sum((posters / r["poster"]).is_file() for r in rows.records) == 1048
    report = ingest(data, min_genre_count=10, out_dir=tmp_path / "interim")
    assert report["rows_in"] == report["rows_kept"] + report["rows_dropped"] == 2996
    # The 1,048 with a poster: 1,013 kept, 29 without genre, 3 duplicate titles, 3 with only rare
    # genres. The 1,948 without: 1,901 poster_missing, the rest dropped by earlier rules.
    with_poster = {r["id"] for r in rows.records if (posters / r["poster"]).is_file()}
    dropped_with_poster = [d for d in report["dropped"] if d["id"] in with_poster]
    assert report["rows_kept"] + len(dropped_with_poster) == 1048
    assert report["dropped_by_reason"] == {
        "duplicate_title": 3,
        "no_genre": 73,
        "only_rare_genres": 3,
        "poster_missing": 1901,
        "title_has_slash": 3,
    }
    assert report["rows_kept"] == 1013


def test_movielens_real_posters_are_all_accounted_for(tmp_path):
    root = shared_data("movielens-posters")
    data = {
        "source": "movielens",
        "path": str(root),
        "posters": "",
        "poster_key": "imdb_id",
        "poster_ext": ".jpg",
    }
    report = ingest(data, min_genre_count=10, out_dir=tmp_path / "interim")
    assert report["rows_in"] == 13092
    assert report["rows_in"] == report["rows_kept"] + report["rows_dropped"]
    assert report["dropped_by_reason"]["no_links_row"] == 724
    # The data's README counts 621 posters whose movie lists no genre: 620 are dropped for
    # that, and one ("Recto / verso") earlier for the slash in its title.
    assert report["dropped_by_reason"] == {
        "duplicate_title": 1,
        "no_genre": 620,
        "no_links_row": 724,
        "title_has_slash": 17,
    }
    assert report["rows_kept"] == 11730

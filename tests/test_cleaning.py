from pathlib import Path

import pytest

from postergenre.data import cleaning
from tests.conftest import write_poster


def rec(id_, title, genres=("Drama",), poster="p.jpg"):
    return {"id": id_, "title": title, "genres": list(genres), "poster": poster, "row": 0}


@pytest.mark.parametrize(
    "name, safe",
    [
        ("What's Up, Doc?", "What's Up, Doc(QM)"),
        ("AC/DC: Live", "AC(SL)DC(COL) Live"),
        ("..", "(DOT)(DOT)"),
        ("../../etc/passwd", "(DOT)(DOT)(SL)(DOT)(DOT)(SL)etc(SL)passwd"),
        ('Say "Cheese"', "Say (DQ)Cheese(DQ)"),
        ("Amélie", "Amélie"),
        ("Trailing.", "Trailing(DOT)"),
        ("Wait... What", "Wait(DOT)(DOT)(DOT) What"),
        ("poster.jpg", "poster.jpg"),
        ("", "(EMPTY)"),
        ("a\\b|c*d<e>f", "a(BSL)b(VB)c(AST)d(LT)e(GT)f"),
        ("tab\there", "tab(CTRL)here"),
    ],
)
def test_safe_filename(name, safe):
    assert cleaning.safe_filename(name) == safe


@pytest.mark.parametrize("name", ["..", "../x", "/etc/passwd", "a/../../b", ".hidden", "C:\\x"])
def test_safe_filename_never_escapes_its_folder(tmp_path, name):
    safe = cleaning.safe_filename(name)
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".")
    assert cleaning.is_within(tmp_path, safe)


def test_safe_filename_caps_length():
    assert len(cleaning.safe_filename("x" * 1000).encode()) <= 200


def test_is_within_rejects_escapes(tmp_path):
    assert cleaning.is_within(tmp_path, "a/b.jpg")
    assert not cleaning.is_within(tmp_path, "../b.jpg")
    assert not cleaning.is_within(tmp_path, "/etc/passwd")
    assert not cleaning.is_within(tmp_path, "")


def test_titles_with_slash_or_replacement_character_are_dropped():
    kept, dropped = cleaning.drop_bad_titles(
        [rec("1", "8 1/2"), rec("2", "Bad \ufffd bytes"), rec("3", "Amélie (2001)")]
    )
    assert [r["id"] for r in kept] == ["3"]
    assert [(d["id"], d["reason"]) for d in dropped] == [("1", "title_has_slash"), ("2", "title_undecodable")]


def test_movies_without_genre_are_dropped():
    kept, dropped = cleaning.drop_no_genre([rec("1", "A", ()), rec("2", "B")])
    assert [r["id"] for r in kept] == ["2"] and dropped[0]["reason"] == "no_genre"


def test_duplicate_titles_keep_first():
    kept, dropped = cleaning.drop_duplicate_titles(
        [rec("1", "Hamlet"), rec("2", "Hamlet"), rec("3", "hamlet")]
    )
    assert [r["id"] for r in kept] == ["1", "3"]
    assert [(d["id"], d["reason"]) for d in dropped] == [("2", "duplicate_title")]


def test_duplicate_ids_keep_first():
    kept, dropped = cleaning.drop_duplicate_ids([rec("7", "A"), rec("7", "B")])
    assert [r["title"] for r in kept] == ["A"] and dropped[0]["reason"] == "duplicate_id"


def test_unknown_genres_are_removed_and_counted():
    out, removed = cleaning.drop_unknown_genres(
        [rec("1", "A", ("Drama", "Space Opera", "Drama"))], frozenset({"Drama"})
    )
    assert out[0]["genres"] == ["Drama"]
    assert removed == {"Space Opera": 1}


def test_rare_genres_leave_the_vocabulary():
    records = [rec(str(i), f"T{i}", ("Drama",)) for i in range(3)] + [
        rec("9", "Only rare", ("Western",)),
        rec("10", "Mixed", ("Drama", "Western")),
    ]
    kept, dropped, rare, vocab = cleaning.drop_rare_genres(records, min_count=3)
    assert vocab == ["Drama"]
    assert rare == {"Western": 2}
    assert [d["id"] for d in dropped] == ["9"] and dropped[0]["reason"] == "only_rare_genres"
    assert next(r for r in kept if r["id"] == "10")["genres"] == ["Drama"]


def test_vocabulary_is_ordered_by_count_then_name():
    records = [rec("1", "a", ("B", "A")), rec("2", "b", ("C",)), rec("3", "c", ("C",))]
    *_, vocab = cleaning.drop_rare_genres(records, min_count=1)
    assert vocab == ["C", "A", "B"]


def test_missing_and_escaping_posters_are_dropped(tmp_path: Path):
    write_poster(tmp_path / "posters" / "here.jpg")
    (tmp_path / "outside.jpg").write_bytes(b"x")
    kept, dropped = cleaning.drop_missing_posters(
        [
            rec("1", "A", poster="here.jpg"),
            rec("2", "B", poster="gone.jpg"),
            rec("3", "C", poster="../outside.jpg"),
        ],
        tmp_path / "posters",
    )
    assert [r["id"] for r in kept] == ["1"]
    assert [(d["id"], d["reason"]) for d in dropped] == [("2", "poster_missing"), ("3", "poster_path_unsafe")]

"""Genre vocabularies of the sources, and the study's genre counts."""

from __future__ import annotations

# TMDB's 20 genres and how many of the study's 35,000 cleaned movies carry each (CS229, 2019).
STUDY_GENRE_COUNTS: dict[str, int] = {
    "Drama": 15941,
    "Comedy": 10961,
    "Thriller": 6353,
    "Romance": 5471,
    "Action": 5164,
    "Horror": 3968,
    "Crime": 3496,
    "Documentary": 3494,
    "Adventure": 2831,
    "Science Fiction": 2547,
    "Family": 2337,
    "Mystery": 2065,
    "Fantasy": 1760,
    "Music": 1422,
    "Animation": 1351,
    "Foreign": 1104,
    "War": 1080,
    "History": 1072,
    "Western": 949,
    "TV Movie": 655,
}
STUDY_N_MOVIES = 35000
TMDB_GENRES: frozenset[str] = frozenset(STUDY_GENRE_COUNTS)

MOVIELENS_GENRES: frozenset[str] = frozenset(
    {
        "Action",
        "Adventure",
        "Animation",
        "Children",
        "Comedy",
        "Crime",
        "Documentary",
        "Drama",
        "Fantasy",
        "Film-Noir",
        "Horror",
        "IMAX",
        "Musical",
        "Mystery",
        "Romance",
        "Sci-Fi",
        "Thriller",
        "War",
        "Western",
    }
)
MOVIELENS_NO_GENRE = "(no genres listed)"

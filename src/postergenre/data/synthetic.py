"""Synthetic posters: the embedded default data, so `dvc repro` needs no download.

Each movie gets 1-3 of TMDB's 20 genres, drawn so each genre's share follows the study's counts.
Each genre leaves a visual trace (a colour, a brightness, a shape, a texture) that is mixed with
distractor shapes and pixel noise, so a model can learn the genres but not perfectly.
"""

from __future__ import annotations

import colorsys
import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from postergenre.core.atomic import atomic_path
from postergenre.data.vocab import STUDY_GENRE_COUNTS, STUDY_N_MOVIES
from postergenre.progress import Progress

GENRES = list(STUDY_GENRE_COUNTS)
_SHAPES = ("ellipse", "rectangle", "triangle", "hstripes", "vstripes", "diagonal", "dots", "ring")


def _genre_style(index: int) -> dict:
    """A fixed look per genre: hue spread around the wheel, a shape, a brightness and a texture."""
    hue = (index * 7 % 20) / 20.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return {
        "color": (int(r * 255), int(g * 255), int(b * 255)),
        "shape": _SHAPES[index % len(_SHAPES)],
        "brightness": ((index * 37) % 9 - 4) * 9,  # -36 .. +36
        "grain": 4 + (index * 5) % 4 * 6,  # pixel-noise sigma 4 .. 22
    }


STYLES = {genre: _genre_style(i) for i, genre in enumerate(GENRES)}


def sample_labels(n: int, rng: np.random.Generator) -> list[list[str]]:
    """n genre sets of 1-3 genres; each genre drawn with its share of the study's movies."""
    p = np.array([STUDY_GENRE_COUNTS[g] / STUDY_N_MOVIES for g in GENRES])
    out: list[list[str]] = []
    while len(out) < n:
        draws = rng.random((max(64, 2 * (n - len(out))), len(GENRES))) < p
        for row in draws[(draws.sum(1) >= 1) & (draws.sum(1) <= 3)]:
            out.append([GENRES[j] for j in np.flatnonzero(row)])
            if len(out) == n:
                break
    return out


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, color, box, rng) -> None:
    x0, y0, x1, y1 = box
    if shape == "ellipse":
        draw.ellipse(box, fill=color)
    elif shape == "rectangle":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=color)
    elif shape == "ring":
        draw.ellipse(box, outline=color, width=max(2, (x1 - x0) // 6))
    elif shape == "hstripes":
        for y in range(y0, y1, 6):
            draw.line([(x0, y), (x1, y)], fill=color, width=2)
    elif shape == "vstripes":
        for x in range(x0, x1, 6):
            draw.line([(x, y0), (x, y1)], fill=color, width=2)
    elif shape == "diagonal":
        for d in range(-(y1 - y0), x1 - x0, 8):
            draw.line([(x0 + d, y0), (x0 + d + (y1 - y0), y1)], fill=color, width=2)
    else:  # dots
        for _ in range(12):
            cx, cy = int(rng.integers(x0, x1 + 1)), int(rng.integers(y0, y1 + 1))
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=color)


def _random_box(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, int, int]:
    w = int(rng.integers(width // 5, width // 2))
    h = int(rng.integers(height // 6, height // 3))
    x = int(rng.integers(0, width - w))
    y = int(rng.integers(0, height - h))
    return x, y, x + w, y + h


def render_poster(
    genres: list[str], rng: np.random.Generator, width: int, height: int, noise: float
) -> Image.Image:
    """One poster whose look depends on its genres, blurred by distractors and noise."""
    styles = [STYLES[g] for g in genres]
    base = np.mean([s["color"] for s in styles], axis=0) * 0.45 + rng.normal(0, 25, 3)
    base += sum(s["brightness"] for s in styles)
    ramp = np.linspace(1.15, 0.55, height)[:, None, None]
    pixels = np.clip(base[None, None, :] * ramp * np.ones((height, width, 1)), 0, 255)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    # Distractors: shapes of a random style, so no single shape identifies a genre for sure.
    for _ in range(int(rng.binomial(3, noise))):
        other = STYLES[GENRES[int(rng.integers(len(GENRES)))]]
        _draw_shape(draw, other["shape"], other["color"], _random_box(rng, width, height), rng)
    for style in styles:
        for _ in range(int(rng.integers(1, 3))):
            jitter = rng.normal(0, 30 * noise, 3)
            color = tuple(int(c) for c in np.clip(np.array(style["color"]) + jitter, 0, 255))
            _draw_shape(draw, style["shape"], color, _random_box(rng, width, height), rng)
    grain = max(s["grain"] for s in styles) * (0.5 + noise)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, grain, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def generate(
    out_dir: str | Path,
    n: int,
    seed: int,
    width: int = 120,
    height: int = 180,
    noise: float = 0.5,
    progress: bool = True,
) -> Path:
    """Write `out_dir/movies.csv` (id,title,genres,poster) and `out_dir/posters/<id>.jpg`.

    `poster` is relative to the posters folder, as the csv source reads it.
    """
    out_dir = Path(out_dir)
    labels = sample_labels(n, np.random.default_rng(seed))
    with atomic_path(out_dir) as tmp:
        (tmp / "posters").mkdir(parents=True)
        rows = []
        bar = Progress("synthesize", len(labels), "poster", enabled=progress)
        for i, genres in enumerate(labels):
            bar.update()
            movie_id = i + 1
            rng = np.random.default_rng([seed, movie_id])
            buf = io.BytesIO()
            render_poster(genres, rng, width, height, noise).save(buf, "JPEG", quality=90)
            name = f"{movie_id}.jpg"
            (tmp / "posters" / name).write_bytes(buf.getvalue())
            rows.append((movie_id, f"Synthetic Movie {movie_id}", "|".join(genres), name))
        bar.close()
        with open(tmp / "movies.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(("id", "title", "genres", "poster"))
            writer.writerows(rows)
    return out_dir

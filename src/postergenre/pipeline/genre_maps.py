"""genre-maps: what each genre looks like to the best method with heat maps.

For every genre, the test posters the best of the methods with a convolutional network (head,
custom, resnet34, lite: the one with the highest test mAP) scores highest for it, each with that
genre's Grad-CAM heat map (`postergenre explain`) and a green frame where the poster truly has
the genre, red where not; beside them the genre's precision at each of those ranks. Written to
`plots/genres/genres.png` and `genres.json` (the stage `genre-maps`, after the evaluate stages).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from postergenre.core import dataset, paths
from postergenre.core.atomic import atomic_path, write_json
from postergenre.methods import estimator_class, load_model, specs
from postergenre.methods.heatmaps import font, overlay, poster_maps
from postergenre.methods.params import all_methods
from postergenre.progress import Progress
from postergenre.runtime import entry

log = logging.getLogger(__name__)

RANKS = 5
CELL = (80, 120)  # a poster as drawn


def best_method(params: dict, details: Path = paths.METRICS / "details") -> tuple[str, dict[str, float]]:
    """The method with heat maps and the highest test mAP, and every candidate's mAP."""
    candidates = [m for m in all_methods(params) if estimator_class(m).has_heatmaps]
    if not candidates:
        known = ", ".join(m for m in specs() if estimator_class(m).has_heatmaps)
        raise ValueError(f"no method with heat maps in params.yaml (one of {known})")
    maps = {}
    for m in candidates:
        test = json.loads((details / f"{m}.json").read_text(encoding="utf-8"))["test"]
        maps[m] = test["scores"].get("mAP") if test["scores"].get("mAP") is not None else -1.0
    return max(candidates, key=lambda m: (maps[m], -candidates.index(m))), maps


def precision_at_ranks(truth: np.ndarray) -> list[float]:
    """truth [r] 0/1 of the top-r posters in score order -> precision at 1..r."""
    hits = np.cumsum(truth)
    return [round(float(h / (i + 1)), 4) for i, h in enumerate(hits)]


def genre_maps(model_dir: Path, out: Path, ranks: int = RANKS) -> dict[str, Any]:
    model = load_model(model_dir)
    genres = dataset.read_genres()
    data = model.inputs("test", genres)
    P = model.predict_proba(data.X)
    # the maps need the posters; a model on features read features, the others posters
    posters = data.X if data.X.ndim == 4 else dataset.load_split("test", model.size, genres).X
    titles = dataset.read_titles()
    rows = []
    w, h = CELL
    pad, label_w, title_h = 6, 150, 14
    canvas = Image.new(
        "RGB", (label_w + ranks * (w + pad) + pad, len(genres) * (h + title_h + pad) + pad), "white"
    )
    draw, text_font = ImageDraw.Draw(canvas), font()
    with Progress("genre-maps", len(genres), "genre") as bar:
        for g, genre in enumerate(genres):
            top = np.argsort(-P[:, g], kind="stable")[:ranks]
            truth = data.Y[top, g].astype(int)
            precision = precision_at_ranks(truth)
            y = pad + g * (h + title_h + pad)
            n_true = int(data.Y[:, g].sum())
            draw.text((pad, y + title_h), genre, fill="black", font=text_font)
            draw.text((pad, y + title_h + 14), f"{n_true} of {len(P)} test", fill="#555", font=text_font)
            draw.text((pad, y + title_h + 28), "precision at ranks:", fill="#555", font=text_font)
            draw.text(
                (pad, y + title_h + 42), " ".join(f"{p:.2f}" for p in precision), fill="black", font=text_font
            )
            entries = []
            for r, i in enumerate(top):
                x = label_w + r * (w + pad)
                one = posters[i : i + 1]
                cams, _, region = poster_maps(model, one, data.X[i : i + 1], [g])
                pic = Image.fromarray(np.asarray(one[0]))  # as the model read it, drawn 2:3
                canvas.paste(overlay(pic, cams[g], region, CELL), (x, y + title_h))
                colour = "#2e7d32" if truth[r] else "#c62828"
                draw.rectangle(
                    [x - 2, y + title_h - 2, x + w + 1, y + title_h + h + 1], outline=colour, width=3
                )
                draw.text((x, y), f"#{r + 1} {P[i, g]:.2f}", fill="black", font=text_font)
                entries.append(
                    {
                        "id": data.ids[i],
                        "title": titles.get(data.ids[i], ""),
                        "score": round(float(P[i, g]), 6),
                        "has_genre": bool(truth[r]),
                    }
                )
            rows.append(
                {
                    "genre": genre,
                    "test_posters_with_genre": n_true,
                    "precision_at_ranks": precision,
                    "top": entries,
                }
            )
            bar.update()
    result = {"method": model.method, "model": str(model_dir), "ranks": ranks, "genres": rows}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "genres.png") as tmp:
        canvas.save(tmp, "PNG", optimize=True)
    write_json(out / "genres.json", result)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="plots/genres", help="folder for genres.png / .json")
    parser.add_argument("--ranks", type=int, default=RANKS, help="posters per genre")
    entry.add_data_option(parser)
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    paths.use_data(args.data)
    torch.set_num_threads(params["training"]["threads"])  # the same maps on every run
    method, maps = best_method(params)
    log.info(
        "genre-maps: %s has the highest test mAP of %s",
        method,
        ", ".join(f"{m} {v:.4f}" for m, v in maps.items()),
    )
    genre_maps(paths.model_dir(method), Path(args.out), args.ranks)
    log.info("genre-maps: wrote %s/genres.png", args.out)


if __name__ == "__main__":
    sys.exit(entry.main("genre-maps", __doc__, add_arguments, run))

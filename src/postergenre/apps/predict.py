"""predict: genres for new posters, from a saved model folder alone.

Each poster is decoded and resized exactly as the pipeline did for the model's training data
(size, JPEG draft, resampling), scored, thresholded with the model's tuned per-genre thresholds,
and ranked. An unusable file is reported with its reason; the others are still predicted.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from postergenre.core.images import MAX_PIXELS, PosterError, load_rgb, resize_variants
from postergenre.core.metrics import raised_thresholds
from postergenre.core.paths import SYNTHETIC
from postergenre.core.sizes import parse_size
from postergenre.methods import load_model
from postergenre.progress import Progress
from postergenre.runtime import entry

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
_BATCH = 256  # posters decoded and scored at a time (progress is reported per batch)


def collect_posters(inputs: list[str | Path]) -> list[Path]:
    """Files as given; folders expanded to their image files, sorted by name."""
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            out += sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(item)
    return out


class PosterReader:
    """Decodes a poster file and resizes it to every size a model reads (an ensemble's members
    may read others than its own), exactly as the resize stage did for its training data."""

    def __init__(self, model):
        self.sizes = list(getattr(model, "poster_sizes", [model.size]))
        self._dims = [parse_size(size) for size in self.sizes]
        pre = model.preprocess
        # A model folder may lower the decompression-bomb limit, never raise it past ours.
        self.max_pixels = min(int(pre.get("max_pixels", MAX_PIXELS)), MAX_PIXELS)
        self.draft = pre.get("draft")

    def read(self, path: str | Path) -> tuple[Image.Image, list[np.ndarray]]:
        """The decoded RGB image and its uint8 [H, W, 3] arrays in `sizes` order; PosterError
        with the reason for an unusable file."""
        image = load_rgb(path, self.max_pixels, self.draft)
        return image, resize_variants(image, self._dims)


def predict_posters(model_dir: str | Path, inputs: Sequence[str | Path], top_k: int = 3) -> dict[str, Any]:
    """{"genres", "predictions": [...], "errors": [...]} for the posters in `inputs`."""
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {top_k}")
    model = load_model(model_dir)
    paths = collect_posters(list(inputs))
    warning = training_warning(model_dir, model.trained_on, paths)
    if warning:
        log.warning("%s", warning)
    reader = PosterReader(model)
    sizes = reader.sizes
    thresholds = named_thresholds(model)
    predictions: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    bar = Progress("predict", len(paths), "file")  # the unusable ones too: listed in errors
    for start in range(0, len(paths), _BATCH):
        chunk = paths[start : start + _BATCH]
        batch: list[list[np.ndarray]] = []
        names = []
        for path in chunk:
            try:
                batch.append(reader.read(path)[1])
            except PosterError as exc:
                errors.append({"poster": str(path), "reason": exc.reason, "detail": exc.detail})
                continue
            names.append(str(path))
        if batch:
            sized = {size: np.stack([b[i] for b in batch]) for i, size in enumerate(sizes)}
            scores = model.predict_proba(model.inputs_from_sized_posters(sized))
            chosen = model.decide(scores)
            for name, row, picked in zip(names, scores, chosen, strict=True):
                order = np.argsort(-row, kind="stable")[:top_k]
                predictions.append(
                    {
                        "poster": name,
                        "genres": [model.genres[j] for j in np.flatnonzero(picked)],
                        "top_k": [[model.genres[j], round(float(row[j]), 6)] for j in order],
                        "scores": {g: round(float(s), 6) for g, s in zip(model.genres, row, strict=True)},
                    }
                )
        bar.update(len(chunk))
    bar.close()
    return {
        "model": str(model_dir),
        "method": model.method,
        "genres": model.genres,
        "trained_on": model.trained_on,
        "warning": warning,
        # what names a genre: its score at or above its threshold, or among the top_k
        "thresholds": {g: round(float(t), 6) for g, t in zip(model.genres, thresholds, strict=True)},
        "top_k_named": int(model.operating_point["top_k"]),
        "predictions": predictions,
        "errors": errors,
    }


def named_thresholds(model) -> np.ndarray:
    """Each genre's threshold as the model's operating point applies it (raised by its lift):
    a score at or above it names the genre (as do the top_k highest, where top_k > 0)."""
    return raised_thresholds(
        np.asarray(model.thresholds, dtype=np.float64), float(model.operating_point.get("lift", 0.0))
    )


def training_warning(
    model_dir: str | Path, trained_on: dict[str, Any], posters: list[Path] | None = None
) -> str | None:
    """What a user must know before trusting the scores: a model that never saw a real poster
    (said unless every poster given is one of the synthetic set it was trained on)."""
    if not trained_on:
        return (
            f"{model_dir}/model.json does not say what the model was trained on (a model "
            "saved before that was recorded); retrain it to know"
        )
    if trained_on.get("source") == "synthetic":
        folder = Path(trained_on.get("path") or SYNTHETIC).resolve()
        if posters and all(folder in Path(p).resolve().parents for p in posters):
            return None
        return (
            f"{model_dir} was trained on {trained_on.get('posters', '?')} synthetic posters "
            "(data.source=synthetic) and never saw a real one: its scores on real posters "
            "mean nothing. Train on real posters first (docs/results.md)"
        )
    return None


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table: poster, predicted genres (by score, none cut), top-k with each score
    against its genre's threshold (`>=`: named by it), then what names a genre."""
    rows = []
    thresholds = result.get("thresholds") or {}

    def scored(genre: str, score: float) -> str:
        if genre not in thresholds:
            return f"{genre} {score:.3f}"
        return f"{genre} {score:.3f} {'>=' if score >= thresholds[genre] else '<'} {thresholds[genre]:.3f}"

    for p in result["predictions"]:
        picked = sorted(p["genres"], key=lambda g: -p["scores"][g])
        rows.append(
            (Path(p["poster"]).name, ", ".join(picked) or "-", ", ".join(scored(g, s) for g, s in p["top_k"]))
        )
    name_w = max([len("poster")] + [len(r[0]) for r in rows] + [0])
    genre_w = max([len("predicted genres")] + [len(r[1]) for r in rows])
    lines = [f"{'poster':{name_w}s}  {'predicted genres':{genre_w}s}  top-k: score vs threshold"]
    lines += [f"{name:{name_w}s}  {genres:{genre_w}s}  {top}" for name, genres, top in rows]
    for e in result["errors"]:
        lines.append(f"{Path(e['poster']).name:{name_w}s}  not predicted: {e['reason']} {e['detail']}")
    if thresholds:
        forced = result.get("top_k_named", 0)
        lines.append(
            "named: a genre scored at or above its threshold (tuned on dev)"
            + (f", and each poster's {forced} highest-scored" if forced else "")
        )
    return "\n".join(lines)


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="poster files or folders of posters")
    parser.add_argument("--model", required=True, help="a model folder, e.g. models/custom")
    parser.add_argument("--top-k", type=entry.positive_int, default=3, help="genres listed per poster")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")


NEEDS_PARAMS = False  # a model folder is all it reads


def run(args: argparse.Namespace, params: dict | None) -> None:
    result = predict_posters(args.model, args.paths, top_k=args.top_k)
    print(to_json(result) if args.json else format_table(result))  # errors included, once
    if not result["predictions"]:
        raise ValueError("no poster could be predicted")

"""predict: genres for new posters, from a saved model folder alone.

Each poster is decoded and resized exactly as the pipeline did for the model's training data
(size, JPEG draft, resampling), scored, thresholded with the model's tuned per-genre thresholds,
and ranked. An unusable file is reported with its reason; the others are still predicted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from postergenre.images import PosterError, load_rgb, resize_variants
from postergenre.methods import load_model
from postergenre.sizes import parse_size

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
_BATCH = 256
MAX_PIXELS = 50_000_000  # params.yaml's default resize.max_pixels


def collect_posters(inputs: list[str | Path]) -> list[Path]:
    """Files as given; folders expanded to their image files, sorted by name."""
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            out += sorted(p for p in item.iterdir()
                          if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(item)
    return out


def predict_posters(model_dir: str | Path, inputs: list[str | Path], top_k: int = 3
                    ) -> dict[str, Any]:
    """{"genres", "predictions": [...], "errors": [...]} for the posters in `inputs`."""
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {top_k}")
    model = load_model(model_dir)
    width, height = parse_size(model.size)
    pre = model.preprocess
    # A model folder may lower the decompression-bomb limit, never raise it past ours.
    max_pixels = min(int(pre.get("max_pixels", MAX_PIXELS)), MAX_PIXELS)
    draft = pre.get("draft")
    paths = collect_posters(inputs)
    predictions: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for start in range(0, len(paths), _BATCH):
        batch, names = [], []
        for path in paths[start:start + _BATCH]:
            try:
                image = load_rgb(path, max_pixels, draft)
            except PosterError as exc:
                errors.append({"poster": str(path), "reason": exc.reason, "detail": exc.detail})
                continue
            batch.append(resize_variants(image, [(width, height)])[0])
            names.append(str(path))
        if not batch:
            continue
        scores = model.predict_proba(model.inputs_from_posters(np.stack(batch)))
        chosen = model.decide(scores)
        for name, row, picked in zip(names, scores, chosen, strict=True):
            order = np.argsort(-row, kind="stable")[:top_k]
            predictions.append({
                "poster": name,
                "genres": [model.genres[j] for j in np.flatnonzero(picked)],
                "top_k": [[model.genres[j], round(float(row[j]), 6)] for j in order],
                "scores": {g: round(float(s), 6) for g, s in zip(model.genres, row, strict=True)},
            })
    return {"model": str(model_dir), "method": model.method, "genres": model.genres,
            "predictions": predictions, "errors": errors}


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table: poster, predicted genres, top-k with scores."""
    lines = [f"{'poster':40s}  {'predicted genres':36s}  top-k"]
    for p in result["predictions"]:
        top = ", ".join(f"{g} {s:.2f}" for g, s in p["top_k"])
        lines.append(f"{Path(p['poster']).name[:40]:40s}  {', '.join(p['genres'])[:36] or '-':36s}  {top}")
    for e in result["errors"]:
        lines.append(f"{Path(e['poster']).name[:40]:40s}  not predicted: {e['reason']} {e['detail']}")
    return "\n".join(lines)


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False)

"""explain: why a model names the genres it names, poster by poster.

For each poster: every genre's score, the model's tuned thresholds (as its operating point
raises them) and the genres it decides; a heat map per genre over the poster, and the nearest
training posters.

- Heat maps are Grad-CAM (Selvaraju et al., 2017) on the last convolutional block: each channel
  of that block's output weighted by the mean gradient of the genre's logit with respect to it,
  summed, negative parts cut, scaled to [0, 1]. For `head` the block is its (first) backbone's
  1x1 head convolution in one view (squash when the model reads it), the other views and
  backbones held at their values; for `custom`, `resnet34` and `lite` the network's own last
  block (`cam_layer`). A map says which regions raised that genre's score at that block's
  resolution (7x7 for Lite at 224 px, 8x8 for the custom CNN at 64x64): where, not why, and
  nothing about what lowered it.
- Nearest training posters: for `head`, by cosine similarity of the features the head reads
  (the backbone space), from an index built once per model folder and cached under
  `.cache/explain/`; for the kNN methods (`mlknn`, `ovr`, `mlknn_features`) the neighbours
  their own prediction counts, by their own Euclidean distance. Their pictures, titles and
  genres come from the repository's data (`data/resized`, `data/interim`); elsewhere the
  neighbours are left out with the reason.

`postergenre explain --model DIR POSTER... --out DIR` writes one PNG per poster and
`explain.json`; `postergenre serve` shows the same in a web page.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from postergenre.apps.predict import PosterReader, collect_posters, named_thresholds, training_warning
from postergenre.core import dataset, paths
from postergenre.core.atomic import atomic_path, write_json
from postergenre.core.images import PosterError
from postergenre.methods import estimator_class, load_model, specs
from postergenre.methods.base import Estimator
from postergenre.methods.heatmaps import DISPLAY, font, overlay, poster_maps
from postergenre.methods.knn.neighbours import neighbours
from postergenre.progress import Progress

log = logging.getLogger(__name__)

NEIGHBOURS = 6
CACHE = paths.EXPLAIN_CACHE
THUMB = (100, 150)


class ExplainError(ValueError):
    """A model or poster that cannot be explained, with the reason."""


@dataclass
class Explanation:
    poster: str
    image: Image.Image  # the decoded poster
    scores: np.ndarray  # [n_genres]
    decided: np.ndarray  # [n_genres] 0/1: what `predict` names
    cams: dict[int, np.ndarray]  # genre index -> [h, w] in [0, 1]
    cam_region: tuple[float, float]  # the rows of the poster the maps cover (fractions)
    cam_view: str
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    neighbours_note: str = ""  # why there are none, if there are none


# -- nearest training posters -----------------------------------------------------------------


class TrainingPosters:
    """The repository's posters (pictures at one resize variant), titles and genres, and the
    training split's ids; read, as every stage reads them, from the working directory."""

    def __init__(self):
        interim, resized, split = paths.interim(), paths.resized(), paths.split()
        if not (interim / "movies.csv").is_file() or not (split / "train.txt").is_file():
            raise ExplainError(
                f"no {interim}/movies.csv or {split}/train.txt here: run it in the "
                "repository that trained the model, after `dvc repro`"
            )
        self.train_ids = (split / "train.txt").read_text(encoding="utf-8").split()
        self.titles = dataset.read_titles(interim)
        self.labels = dataset.read_labels(interim)
        arrays = sorted(resized.glob("*.npy"), key=lambda p: p.stat().st_size)
        arrays = [p for p in arrays if not p.name.startswith(".")]
        if not arrays:
            raise ExplainError(f"no resized posters in {resized}: run `dvc repro resize`")
        # the smallest variant at least 100 px wide: thumbnails are drawn 100 x 150
        wide = [p for p in arrays if _width(p) >= THUMB[0]]
        self.array = np.load((wide or arrays)[0], mmap_mode="r")
        self.row = {i: r for r, i in enumerate(dataset.read_manifest(resized))}

    def picture(self, movie_id: str) -> Image.Image | None:
        row = self.row.get(movie_id)
        return None if row is None else Image.fromarray(np.asarray(self.array[row]))

    def describe(self, movie_id: str) -> dict[str, Any]:
        return {
            "id": movie_id,
            "title": self.titles.get(movie_id, ""),
            "genres": list(self.labels.get(movie_id, [])),
        }


def _width(path: Path) -> int:
    return int(np.load(path, mmap_mode="r").shape[2])


class NeighbourIndex:
    """Training vectors in the space the neighbours are searched in, with their movie ids, and
    how a model's inputs become a vector of that space (`to_vectors`)."""

    def __init__(self, ids: list[str], vectors: np.ndarray, metric: str, space: str, to_vectors):
        self.ids, self.vectors, self.metric, self.space = ids, vectors, metric, space
        self.to_vectors = to_vectors

    def search(self, inputs: np.ndarray, k: int = NEIGHBOURS) -> list[tuple[str, float]]:
        """The k nearest (id, similarity or distance) to one poster's model inputs [1, ...],
        nearest first."""
        query = self.to_vectors(inputs)[0]
        k = min(k, len(self.ids))
        if self.metric == "cosine":
            sims = self.vectors @ query
            top = np.argsort(-sims, kind="stable")[:k]
            return [(self.ids[i], float(sims[i])) for i in top]

        rows = neighbours(self.vectors, query[None, :], k, lambda v: v.astype(np.float64))[0]
        d = np.sqrt(np.maximum(((self.vectors[rows] - query) ** 2).sum(axis=1), 0))
        return [(self.ids[i], float(di)) for i, di in zip(rows, d, strict=True)]


def build_index(model, model_dir: Path, posters: TrainingPosters, cache: Path = CACHE) -> NeighbourIndex:
    """The model's neighbour index in the space it says it searches (`neighbour_space`); the
    training vectors of a space derived from the split are cached once per model folder."""
    space = model.neighbour_space()
    if space is None:
        raise ExplainError(
            f"{model.method} searches no neighbours (they are shown for the "
            "feature methods and the kNN methods)"
        )
    if not space.cacheable:
        vectors = space.train_vectors()
        if len(vectors) != len(posters.train_ids):
            raise ExplainError(
                f"{model_dir} holds {len(vectors)} training posters, this "
                f"repository's train split {len(posters.train_ids)}: not the data "
                "it was trained on"
            )
        return NeighbourIndex(posters.train_ids, vectors, space.metric, space.described, space.to_vectors)
    key = hashlib.sha256((model_dir / "model.json").read_bytes()).hexdigest()[:16]
    path = cache / f"{model.method}-{key}.npz"
    if path.is_file():
        saved = np.load(path)
        return NeighbourIndex(
            saved["ids"].tolist(), saved["vectors"], space.metric, space.described, space.to_vectors
        )
    log.info("explain: indexing the training posters' features for %s (once per model folder)", model_dir)
    ids, vectors = posters.train_ids, space.train_vectors()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, ids=np.array(ids), vectors=vectors)
    return NeighbourIndex(list(ids), vectors, space.metric, space.described, space.to_vectors)


def explainable_methods() -> str:
    """The methods with heat maps or neighbours, by name."""

    def explainable(method: str) -> bool:
        cls = estimator_class(method)
        return cls.has_heatmaps or cls.neighbour_space is not Estimator.neighbour_space

    return ", ".join(m for m in specs() if explainable(m))


# -- the explainer -----------------------------------------------------------------------------


class Explainer:
    """A model folder loaded once, with its neighbour index; `explain` per poster."""

    def __init__(self, model_dir: str | Path, cache: Path = CACHE):
        self.model_dir = Path(model_dir)
        self.model = model = load_model(model_dir)
        if not model.has_heatmaps and model.neighbour_space() is None:
            raise ExplainError(
                f"{model.method} cannot be explained: it has neither heat maps nor "
                f"neighbours (explain takes {explainable_methods()})"
            )
        self.reader = PosterReader(model)
        self.genres = model.genres
        # the bar each genre's score must reach to be named without the top-k rule
        self.thresholds = named_thresholds(model)
        self.top_k = int(model.operating_point.get("top_k", 0))
        self.posters = self.index = None
        self.neighbours_note = ""
        try:
            self.posters = TrainingPosters()
            self.index = build_index(model, self.model_dir, self.posters, cache)
        except ExplainError as exc:
            self.neighbours_note = str(exc)
            log.warning("explain: no nearest posters: %s", exc)

    def explain(self, path: str | Path, name: str | None = None, cam_genres: str = "all") -> Explanation:
        """One poster file; PosterError for an unusable one. `cam_genres`: `all` genres' heat
        maps, or only the `decided` ones (the top-scored one if none is)."""
        image, sized_list = self.reader.read(path)
        sized = {size: a[None] for size, a in zip(self.reader.sizes, sized_list, strict=True)}
        model = self.model
        inputs = model.inputs_from_sized_posters(sized)
        scores = model.predict_proba(inputs)[0]
        decided = model.decide(scores[None])[0]
        if cam_genres == "all":
            wanted = list(range(len(self.genres)))
        else:
            wanted = [int(j) for j in np.flatnonzero(decided)] or [int(np.argmax(scores))]
        cams, view, region = poster_maps(model, sized[model.size], inputs, wanted)
        out = Explanation(
            str(name or path),
            image,
            scores,
            decided,
            cams,
            region,
            view,
            neighbours_note=self.neighbours_note,
        )
        if self.index is not None and self.posters is not None:
            key = "similarity" if self.index.metric == "cosine" else "distance"
            out.neighbours = [
                {**self.posters.describe(i), key: round(v, 4)} for i, v in self.index.search(inputs)
            ]
        return out

    def as_json(self, e: Explanation) -> dict[str, Any]:
        return {
            "poster": e.poster,
            "method": self.model.method,
            "genres": [self.genres[j] for j in np.flatnonzero(e.decided)],
            "scores": {g: round(float(s), 6) for g, s in zip(self.genres, e.scores, strict=True)},
            "thresholds": {g: round(float(t), 6) for g, t in zip(self.genres, self.thresholds, strict=True)},
            "top_k": self.top_k,
            "heat_maps": {
                self.genres[g]: {"view": e.cam_view, "peak": _peak(c, e.cam_region)}
                for g, c in e.cams.items()
            },
            "neighbour_space": self.index.space if self.index is not None else None,
            "neighbours": e.neighbours,
            **({"neighbours_note": e.neighbours_note} if e.neighbours_note else {}),
        }


def _peak(cam: np.ndarray, region: tuple[float, float]) -> list[float]:
    """Where the map is hottest, as (x, y) fractions of the poster's width and height."""
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    top, bottom = region
    fy = top + (bottom - top) * (y + 0.5) / cam.shape[0]
    return [round((x + 0.5) / cam.shape[1], 3), round(fy, 3)]


# -- pictures ----------------------------------------------------------------------------------


def figure(explainer: Explainer, e: Explanation, max_maps: int = 4) -> Image.Image:
    """One picture per poster: the poster, the heat maps of its decided genres (the top one if
    none), every genre's score bar with its threshold, and the nearest training posters."""
    genres = explainer.genres
    shown = [int(j) for j in np.argsort(-e.scores, kind="stable") if e.decided[j]][:max_maps]
    if not shown:
        shown = [int(np.argmax(e.scores))]
    shown = [g for g in shown if g in e.cams] if e.cams else []
    w, h = DISPLAY
    bars_w, pad, label = 330, 10, 16
    top_w = pad + (w + pad) * (1 + len(shown)) + bars_w + pad
    bar_h = 14
    top_h = pad + label + max(h, len(genres) * (bar_h + 3)) + pad
    n_nb = len(e.neighbours)
    nb_h = (label + THUMB[1] + 3 * 12 + pad) if n_nb else (label + pad if e.neighbours_note else 0)
    width = max(top_w, pad + (THUMB[0] + pad) * n_nb)
    canvas = Image.new("RGB", (width, top_h + nb_h), "white")
    draw, text_font = ImageDraw.Draw(canvas), font()
    x = pad
    draw.text((x, pad), Path(e.poster).name[:32], fill="black", font=text_font)
    canvas.paste(overlay(e.image, None), (x, pad + label))
    for g in shown:
        x += w + pad
        draw.text((x, pad), f"{genres[g]} {e.scores[g]:.2f} (heat map)", fill="black", font=text_font)
        canvas.paste(overlay(e.image, e.cams[g], e.cam_region), (x, pad + label))
    x += w + pad
    draw.text(
        (x, pad),
        f"scores; | = threshold; bold = named ({explainer.model.method})",
        fill="black",
        font=text_font,
    )
    name_w, track = 90, bars_w - 90 - 40
    for i, j in enumerate(np.argsort(-e.scores, kind="stable")):
        y = pad + label + i * (bar_h + 3)
        named = bool(e.decided[j])
        draw.text((x, y + 1), genres[j][:14], fill="black" if named else "#666", font=text_font)
        bx = x + name_w
        draw.rectangle([bx, y, bx + track, y + bar_h], outline="#ccc")
        fill = "#c0392b" if named else "#95a5a6"
        draw.rectangle([bx, y, bx + round(track * float(e.scores[j])), y + bar_h], fill=fill)
        tx = bx + round(track * float(explainer.thresholds[j]))
        draw.line([tx, y - 2, tx, y + bar_h + 2], fill="black", width=2)
        draw.text((bx + track + 4, y + 1), f"{e.scores[j]:.2f}", fill="black", font=text_font)
    y0 = top_h
    if n_nb:
        space = explainer.index.space if explainer.index is not None else ""
        draw.text((pad, y0), f"nearest training posters ({space})", fill="black", font=text_font)
        for i, nb in enumerate(e.neighbours):
            nx = pad + i * (THUMB[0] + pad)
            pic = explainer.posters.picture(nb["id"]) if explainer.posters else None
            if pic is not None:
                canvas.paste(pic.resize(THUMB, Image.Resampling.BILINEAR), (nx, y0 + label))
            value = f"sim {nb['similarity']:.2f}" if "similarity" in nb else f"dist {nb['distance']:.2f}"
            lines = [nb["title"][:16], ", ".join(nb["genres"])[:16], value]
            for k, text in enumerate(lines):
                draw.text((nx, y0 + label + THUMB[1] + 2 + 12 * k), text, fill="black", font=text_font)
    elif e.neighbours_note:
        draw.text((pad, y0), f"no nearest posters: {e.neighbours_note}"[:160], fill="#666", font=text_font)
    return canvas


# -- the command -------------------------------------------------------------------------------


def explain_posters(
    model_dir: str | Path, inputs: list[str | Path], out_dir: str | Path, cam_genres: str = "decided"
) -> dict[str, Any]:
    """Write `<out>/<poster stem>.png` per usable poster and `<out>/explain.json`; return it."""
    explainer = Explainer(model_dir)
    paths = collect_posters(inputs)
    warning = training_warning(model_dir, explainer.model.trained_on, paths)
    if warning:
        log.warning("%s", warning)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries, errors, used = [], [], set()
    with Progress("explain", len(paths), "file") as bar:  # the unusable ones too
        for path in paths:
            try:
                e = explainer.explain(path, cam_genres=cam_genres)
            except PosterError as exc:
                errors.append({"poster": str(path), "reason": exc.reason, "detail": exc.detail})
                log.warning("not explained: %s (%s %s)", path, exc.reason, exc.detail)
                bar.update()
                continue
            stem, n = Path(path).stem, 1
            while stem in used:  # two posters of one name in different folders
                n += 1
                stem = f"{Path(path).stem}-{n}"
            used.add(stem)
            with atomic_path(out / f"{stem}.png") as tmp:
                figure(explainer, e).save(tmp, "PNG", optimize=True)
            entries.append({**explainer.as_json(e), "png": f"{stem}.png"})
            bar.update()
    result = {
        "model": str(model_dir),
        "method": explainer.model.method,
        "warning": warning,
        "explanations": entries,
        "errors": errors,
    }
    write_json(out / "explain.json", result)
    log.info(
        "explain: %d of %d files explained, %d not (%s)",
        len(entries),
        len(paths),
        len(errors),
        out / "explain.json",
    )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a model folder (models/METHOD)")
    parser.add_argument("paths", nargs="+", metavar="POSTER", help="poster files or folders of them")
    parser.add_argument("--out", required=True, help="folder for one PNG per poster + explain.json")
    parser.add_argument(
        "--genres",
        choices=["decided", "all"],
        default="decided",
        help="heat maps of the decided genres only (default) or of every genre "
        "(in the JSON; the PNG shows up to four decided ones)",
    )


NEEDS_PARAMS = False


def run(args: argparse.Namespace, params: dict | None) -> None:
    result = explain_posters(args.model, args.paths, args.out, cam_genres=args.genres)
    for e in result["explanations"]:
        print(f"{e['poster']}: {', '.join(e['genres']) or '-'} -> {Path(args.out) / e['png']}")
    if not result["explanations"]:
        raise ValueError("no poster could be explained")

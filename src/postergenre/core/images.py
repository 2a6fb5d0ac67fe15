"""resize: decode every poster once and write it at every size, in parallel.

Outputs (one folder, written whole or not at all):
  <W>x<H>.npy          uint8 array [n, H, W, 3] per size, rows in manifest order
  manifest.csv         row, id: which movie each array row holds
  resize_report.json   counts, and every rejected poster with its reason
"""

from __future__ import annotations

import csv
import io
import logging
import multiprocessing as mp
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from postergenre.core.atomic import atomic_path, write_json
from postergenre.core.sizes import parse_size
from postergenre.progress import Progress

log = logging.getLogger(__name__)

_CHUNK = 64
READ_WHOLE = 16 * 2**20  # bytes: larger files are streamed by Pillow
MAX_PIXELS = 50_000_000  # params.yaml's default resize.max_pixels; `predict`'s ceiling


class PosterError(Exception):
    """A poster that cannot be used; `reason` is a short code for reports."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode to RGB; transparency is laid over white rather than dropped to black."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode == "I;16" or image.mode.startswith("I;16"):
        image = image.point(lambda v: v / 256).convert("L")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_rgb(path: str | Path, max_pixels: int, draft: tuple[int, int] | None = None) -> Image.Image:
    """Open, check and decode one poster to RGB; raise PosterError with the reason if unusable.

    The pixel count is checked from the header, before any decoding, so a file claiming absurd
    dimensions costs nothing. `draft` lets JPEG decode at a reduced scale that is still at
    least that size.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        # One read call for a poster-sized file (Pillow reading the file itself makes dozens of
        # small ones); a larger one is streamed, so a huge non-image costs a few header bytes
        # and a huge image no more than its decoded pixels (bounded by max_pixels).
        source = io.BytesIO(path.read_bytes()) if size <= READ_WHOLE else open(path, "rb")
    except FileNotFoundError:
        raise PosterError("missing_file", str(path)) from None
    except OSError as exc:
        raise PosterError("unreadable_file", str(exc)) from None
    if size == 0:
        raise PosterError("empty_file", str(path))
    try:
        with source, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if width * height > max_pixels or width < 1 or height < 1:
                    raise PosterError(
                        "too_many_pixels", f"{width}x{height} exceeds resize.max_pixels={max_pixels}"
                    )
                if draft is not None and image.format == "JPEG":
                    image.draft("RGB", (draft[0], draft[1]))
                image.load()
                # a phone photo of a poster says in EXIF which way up it is
                return _to_rgb(ImageOps.exif_transpose(image))
    except PosterError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PosterError("too_many_pixels", str(exc)) from None
    except UnidentifiedImageError:
        raise PosterError("not_an_image", "no image format recognised") from None
    except Exception as exc:  # truncated data, broken headers: any decoder error rejects one poster
        raise PosterError("decode_error", f"{type(exc).__name__}: {exc}") from None


def resize_into(image: Image.Image, outs: list[np.ndarray]) -> None:
    """Squash the image into each preallocated uint8 [H, W, 3] array (e.g. rows of the outputs).

    Antialiased bilinear, within one grey level of Pillow's BILINEAR, through torch's vectorised
    uint8 channels-last kernel (about twice Pillow's speed here). The kernel's `out=` form writes
    straight into the output rows, saving a copy per size.
    """
    import torch

    width, height = image.size
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    pixels = pixels.view(1, height, width, 3).permute(0, 3, 1, 2)  # NCHW view, channels-last
    for out in outs:
        target = torch.from_numpy(out).permute(2, 0, 1)[None]
        torch.ops.aten._upsample_bilinear2d_aa.out(pixels, list(out.shape[:2]), False, None, None, out=target)


def resize_variants(image: Image.Image, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """The image squashed to each (width, height), as new uint8 [H, W, 3] arrays."""
    outs = [np.empty((h, w, 3), dtype=np.uint8) for w, h in sizes]
    resize_into(image, outs)
    return outs


def draft_size(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The smallest decode that still serves every size: a JPEG may decode at 1/2, 1/4, 1/8."""
    return max(w for w, _ in sizes), max(h for _, h in sizes)


# Per-worker state: the output arrays, opened once per process.
_worker: dict = {}


def _init_worker(array_paths: list[str], sizes, max_pixels: int) -> None:
    import torch

    torch.set_num_threads(1)  # one process per core already
    _worker["arrays"] = [np.load(p, mmap_mode="r+") for p in array_paths]
    _worker["sizes"] = sizes
    _worker["max_pixels"] = max_pixels


def _process_chunk(chunk: list[tuple[int, str]]) -> list[tuple[int, str, str]]:
    """Decode and resize a chunk into the shared arrays; return (index, reason, detail) rejects."""
    rejects = []
    sizes = _worker["sizes"]
    draft = draft_size(sizes)
    for index, path in chunk:
        try:
            image = load_rgb(path, _worker["max_pixels"], draft)
            resize_into(image, [array[index] for array in _worker["arrays"]])
        except PosterError as exc:
            rejects.append((index, exc.reason, exc.detail))
    # No flush: the mapping is shared, so the parent sees these pages; forcing them to disk here
    # would cost a third of the stage's time.
    return rejects


def resize_posters(
    ids: list[str],
    paths: list[str | Path],
    size_names: list[str],
    out_dir: str | Path,
    workers: int = 0,
    max_pixels: int = MAX_PIXELS,
    progress: bool = True,
) -> dict:
    """Write every usable poster at every size into `out_dir`; return the report."""
    if len(ids) != len(paths):
        raise ValueError(f"{len(ids)} ids but {len(paths)} poster paths")
    import torch  # imported once here, so forked workers share it

    sizes = [parse_size(s) for s in size_names]
    n = len(ids)
    workers = workers or os.cpu_count() or 1
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        scratch = [tmp / f".all-{name}.npy" for name in size_names]
        for path, (w, h) in zip(scratch, sizes, strict=True):
            np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, h, w, 3)).flush()
        chunks = [[(i, str(paths[i])) for i in range(s, min(s + _CHUNK, n))] for s in range(0, n, _CHUNK)]
        init_args = ([str(p) for p in scratch], sizes, max_pixels)
        rejects: list[tuple[int, str, str]] = []
        bar = Progress("resize", n, "poster", enabled=progress)
        if workers == 1 or n <= _CHUNK:
            threads = torch.get_num_threads()
            _init_worker(*init_args)
            try:
                for chunk in chunks:
                    rejects += _process_chunk(chunk)
                    bar.update(len(chunk))
            finally:
                _worker.clear()
                torch.set_num_threads(threads)
        else:
            with mp.get_context("fork").Pool(workers, _init_worker, init_args) as pool:
                for chunk, result in zip(chunks, pool.imap(_process_chunk, chunks), strict=True):
                    rejects += result
                    bar.update(len(chunk))
        bar.close()
        rejects.sort()
        rejected = {i for i, _, _ in rejects}
        keep = np.array([i for i in range(n) if i not in rejected], dtype=np.int64)
        for path, name in zip(scratch, size_names, strict=True):
            _compact(path, keep, tmp / f"{name}.npy")
        with open(tmp / "manifest.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(("row", "id"))
            writer.writerows((row, ids[i]) for row, i in enumerate(keep))
        report = {
            "posters_in": n,
            "posters_ok": int(len(keep)),
            "posters_rejected": len(rejects),
            "rejected_by_reason": dict(sorted(Counter(r for _, r, _ in rejects).items())),
            "sizes": size_names,
            "rejects": [
                {"id": ids[i], "poster": str(paths[i]), "reason": reason, "detail": detail}
                for i, reason, detail in rejects
            ],
        }
        write_json(tmp / "resize_report.json", report)
    log.info(
        "resize: %d posters in, %d ok, %d rejected %s",
        n,
        report["posters_ok"],
        report["posters_rejected"],
        report["rejected_by_reason"],
    )
    return report


def _compact(scratch: Path, keep: np.ndarray, target: Path) -> None:
    """Move the kept rows of `scratch` into `target` in order; rename when nothing was dropped."""
    source = np.load(scratch, mmap_mode="r")
    if len(keep) == len(source):
        del source
        os.replace(scratch, target)
        return
    out = np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=(len(keep), *source.shape[1:]))
    for start in range(0, len(keep), 1024):
        out[start : start + 1024] = source[keep[start : start + 1024]]
    out.flush()
    del out, source
    scratch.unlink()

"""Grad-CAM heat maps (Selvaraju et al., 2017) and how they are drawn over a poster: what
`postergenre explain`, `serve` and the genre-maps stage share.

A map weighs each channel of a network's last convolutional block by the mean gradient of a
genre's logit with respect to it, sums, cuts the negative part and scales to [0, 1]: the regions
that raised that genre's score, at that block's resolution.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageFont

DISPLAY = (200, 300)  # a poster as drawn: 2:3
# the heat map's colours from cold to hot (a perceptual ramp: dark violet, red, orange, yellow)
RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)


def grad_cam(A: torch.Tensor, logits: torch.Tensor, genres: list[int]) -> dict[int, np.ndarray]:
    """Grad-CAM maps [h, w] in [0, 1] of the activations A [1, C, h, w] for each genre's logit
    (logits [1, n_genres], computed from A with the graph kept)."""
    out = {}
    for g in genres:
        (grad,) = torch.autograd.grad(logits[0, g], A, retain_graph=True)
        weights = grad.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * A).sum(dim=1))[0].detach().float()
        peak = float(cam.max())
        out[g] = (cam / peak).numpy() if peak > 0 else cam.numpy()
    return out


# the rows of the poster each view shows (the map is laid over those)
REGIONS = {
    "squash": (0.0, 1.0),
    "aspect": (0.0, 1.0),
    "flip": (0.0, 1.0),
    "top": (0.0, 2 / 3),
    "bottom": (1 / 3, 1.0),
}


def poster_maps(
    model, X: np.ndarray, inputs: np.ndarray, genres: list[int]
) -> tuple[dict[int, np.ndarray], str, tuple[float, float]]:
    """Grad-CAM maps of `genres` for one poster (X [1, H, W, 3] at the model's size; `inputs`:
    what its scores were computed from), the view they are of and the poster's rows they cover;
    no maps for a model without a convolutional network of its own (the kNN methods)."""
    if not model.has_heatmaps:
        return {}, "", (0.0, 1.0)
    with torch.enable_grad():
        A, logits, view = model.cam_activations(X, inputs)
        cams = grad_cam(A, logits, genres)
    if view == "flip":  # the map of the mirrored poster, mirrored back
        cams = {g: c[:, ::-1].copy() for g, c in cams.items()}
    return cams, view, REGIONS[view]


def colour(cam: np.ndarray) -> np.ndarray:
    """[h, w] in [0, 1] -> uint8 RGB [h, w, 3] along RAMP."""
    pos = np.clip(cam, 0, 1) * (len(RAMP) - 1)
    lo = np.minimum(pos.astype(int), len(RAMP) - 2)
    frac = (pos - lo)[..., None]
    return (RAMP[lo] * (1 - frac) + RAMP[lo + 1] * frac).astype(np.uint8)


def overlay(
    image: Image.Image, cam: np.ndarray | None, region=(0.0, 1.0), size: tuple[int, int] = DISPLAY
) -> Image.Image:
    """The poster squashed to `size` with the heat map laid over the rows it covers (the hotter,
    the more opaque), or the poster alone."""
    base = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    if cam is None:
        return base
    w, h = size
    top, bottom = round(region[0] * h), round(region[1] * h)
    heat = Image.fromarray(cam.astype(np.float32), mode="F").resize(
        (w, bottom - top), Image.Resampling.BILINEAR
    )
    heat = np.clip(np.asarray(heat), 0, 1)
    pixels = np.asarray(base, dtype=np.float32).copy()
    alpha = (0.15 + 0.6 * heat)[..., None]
    pixels[top:bottom] = pixels[top:bottom] * (1 - alpha) + colour(heat) * alpha
    return Image.fromarray(pixels.astype(np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    """PNG for the page: fast over small (a 200x300 map is about 150 KB on loopback)."""
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def font():
    return ImageFont.load_default()

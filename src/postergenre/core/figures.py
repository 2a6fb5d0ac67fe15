"""Static pictures of a model's results, readable without a browser or a network.

`dvc plots show` draws the JSON files interactively (its HTML loads the Vega libraries from a
CDN); these PNGs say the same offline and sit in the report: precision-recall curves one colour
per genre, per-genre F1 at the study's 0.5 beside F1 at the tuned thresholds, train and dev loss
per epoch, and a gallery of test posters with titles and scored predictions.

Every PNG is written without a timestamp or version in its metadata, so the same numbers give
the same bytes and a re-run DVC stage leaves its cached output unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from postergenre.core.atomic import atomic_path

DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9})
    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)


def genre_colours(n: int) -> list:
    """n distinct colours (tab20, then tab20b), the same genre the same colour in every figure."""
    plt = _pyplot()
    cmap = list(plt.get_cmap("tab20").colors) + list(plt.get_cmap("tab20b").colors)
    return [cmap[i % len(cmap)] for i in range(n)]


def pr_curves_png(
    path: Path, curves: list[dict[str, Any]], genres: list[str], ap: list, prevalence: list[float], title: str
) -> None:
    """Precision against recall, one small panel per genre in its own colour, with its AP and,
    dashed, the precision of guessing (the genre's share of the posters)."""
    plt = _pyplot()
    cols = 5
    rows = max(1, -(-len(genres) // cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(1.9 * cols, 1.65 * rows + 0.5), sharex=True, sharey=True, squeeze=False
    )
    colours = genre_colours(len(genres))
    for j, g in enumerate(genres):
        ax = axes[j // cols][j % cols]
        pts = [(c["recall"], c["precision"]) for c in curves if c["genre"] == g]
        if pts:
            r, p = zip(*sorted(pts, key=lambda t: (t[0], -t[1])), strict=True)
            ax.plot(r, p, color=colours[j], linewidth=1.4)
        ax.axhline(prevalence[j], color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{g}  AP {ap[j]:.2f}" if ap[j] is not None else f"{g}  (no positive)", fontsize=8)
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    for k in range(len(genres), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.supxlabel("recall", fontsize=9)
    fig.supylabel("precision", fontsize=9)
    fig.suptitle(title + " (dotted: a random guess)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def f1_bars_png(path: Path, rows: list[dict[str, Any]], genres: list[str], title: str) -> None:
    """Per-genre F1 at 0.5 and at the tuned thresholds, side by side."""
    plt = _pyplot()
    at_half = {r["genre"]: r["f1"] for r in rows if r["threshold"] == "0.5"}
    tuned = {r["genre"]: r["f1"] for r in rows if r["threshold"] == "tuned"}
    y = np.arange(len(genres))
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(genres) + 1.2))
    h = 0.4 if tuned else 0.8
    ax.barh(
        y - (h / 2 if tuned else 0),
        [at_half.get(g, 0) for g in genres],
        height=h,
        color="#9aa5b1",
        label="threshold 0.5 (the study's)",
    )
    if tuned:
        ax.barh(y + h / 2, [tuned.get(g, 0) for g in genres], height=h, color="#1f77b4", label="tuned on dev")
    ax.set_yticks(y, genres)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="F1 on the test split", title=title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def training_png(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Loss per epoch, one line per curve (train, dev; per candidate weight decay if several);
    for a method that fits in one pass (no rows), a figure that says so."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if not rows:
        ax.text(
            0.5, 0.5, "fitted in one pass: no epochs, no loss curve", ha="center", va="center", fontsize=11
        )
        ax.set(title=title, xticks=[], yticks=[])
        fig.tight_layout()
        _save(fig, path)
        return
    curves = list(dict.fromkeys(r["curve"] for r in rows))
    for i, name in enumerate(curves):
        pts = sorted((r["epoch"], r["loss"]) for r in rows if r["curve"] == name)
        x, yv = zip(*pts, strict=True)
        dev = name.startswith("dev")
        ax.plot(
            x,
            yv,
            marker="o" if dev else None,
            markersize=3,
            linewidth=1.3,
            linestyle="-" if dev else "--",
            color=f"C{i // 2 if len(curves) > 2 else i}",
            label=name,
        )
    ax.set(xlabel="epoch", ylabel="BCE loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _font(size: int):
    """DejaVu Sans (inside matplotlib's wheel: the same glyphs everywhere, check marks included)."""
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def _wrap(draw, text: str, font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to `width` pixels; the last line ends in '…' if text is cut."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(",") + " …"
    return [line if draw.textlength(line, font=font) <= width else line[:22] + "…" for line in lines]


def gallery_png(
    path: Path,
    posters: np.ndarray,
    titles: list[str],
    genres: list[str],
    Y: np.ndarray,
    Yhat: np.ndarray,
    P: np.ndarray,
    poster_h: int = 240,
) -> None:
    """Posters side by side, each with its title, its true genres, and the predicted genres in
    score order: a check mark (green) when the movie has the genre, a cross (red) when not."""
    from PIL import Image, ImageDraw

    font, bold = _font(13), _font(14)
    cell_w, pad, line_h = 190, 6, 17
    n = max(1, len(posters))
    text_h = line_h * 11
    sheet = Image.new("RGB", (cell_w * n, poster_h + text_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, poster in enumerate(posters):
        x0 = i * cell_w
        # at the posters' 2:3 aspect, whatever size the model read (224x224 is squashed)
        image = Image.fromarray(poster).resize((poster_h * 2 // 3, poster_h), Image.Resampling.BILINEAR)
        sheet.paste(image, (x0 + (cell_w - image.width) // 2, 0))
        y = poster_h + 4
        for line in _wrap(draw, titles[i], bold, cell_w - 2 * pad, 2):
            draw.text((x0 + pad, y), line, fill=(0, 0, 0), font=bold)
            y += line_h
        true = {genres[j] for j in np.flatnonzero(Y[i])}
        for line in _wrap(draw, "true: " + ", ".join(sorted(true)), font, cell_w - 2 * pad, 2):
            draw.text((x0 + pad, y), line, fill=(60, 60, 60), font=font)
            y += line_h
        picked = sorted(np.flatnonzero(Yhat[i]), key=lambda j: -P[i, j])
        draw.text((x0 + pad, y), "predicted:" if picked else "predicted: none", fill=(0, 0, 0), font=font)
        y += line_h
        for j in picked[:5]:
            hit = genres[j] in true
            mark, colour = ("✓", (0, 120, 0)) if hit else ("✗", (190, 0, 0))
            draw.text((x0 + pad, y), f"{mark} {genres[j]} {P[i, j]:.2f}", fill=colour, font=font)
            y += line_h
        if len(picked) > 5:
            draw.text((x0 + pad, y), f"  +{len(picked) - 5} more", fill=(90, 90, 90), font=font)
    with atomic_path(path) as tmp:
        sheet.save(tmp, "PNG")

"""Image sizes as params.yaml writes them: 'WIDTHxHEIGHT'."""

from __future__ import annotations


class SizeError(ValueError):
    """A size that is not WIDTHxHEIGHT with two positive integers."""


def parse_size(text: str) -> tuple[int, int]:
    """'100x150' -> (width, height)."""
    try:
        w, h = (int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise SizeError(f"image size must look like WIDTHxHEIGHT (e.g. 100x150), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise SizeError(f"image size must be positive, got {text!r}")
    return w, h

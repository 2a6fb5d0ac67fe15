import csv
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from postergenre.core.images import PosterError, load_rgb, resize_posters, resize_variants
from tests.conftest import jpeg_bytes, random_image

MAX_PIXELS = 50_000_000


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 10))
        + chunk(b"IEND", b"")
    )


def save(image: Image.Image, path: Path, fmt: str, **kw) -> Path:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    path.write_bytes(buf.getvalue())
    return path


def reason(path: Path) -> str:
    with pytest.raises(PosterError) as err:
        load_rgb(path, MAX_PIXELS)
    return err.value.reason


def test_zero_byte_poster_is_rejected(tmp_path):
    (tmp_path / "p.jpg").write_bytes(b"")
    assert reason(tmp_path / "p.jpg") == "empty_file"


def test_missing_poster_is_rejected(tmp_path):
    assert reason(tmp_path / "nope.jpg") == "missing_file"


def test_truncated_jpeg_is_rejected(tmp_path):
    data = save(random_image(200, 300), tmp_path / "full.jpg", "JPEG").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert reason(tmp_path / "cut.jpg") == "decode_error"


def test_text_file_named_jpg_is_rejected(tmp_path):
    (tmp_path / "p.jpg").write_text("<html>404 Not Found</html>")
    assert reason(tmp_path / "p.jpg") == "not_an_image"


@pytest.mark.parametrize("width, height", [(30000, 30000), (10000, 8000)])
def test_absurd_dimensions_are_rejected_before_decoding(tmp_path, width, height):
    # 30000x30000 trips Pillow's own bomb guard at open; 10000x8000 passes it but not ours.
    (tmp_path / "huge.png").write_bytes(png_header_claiming(width, height))
    with pytest.raises(PosterError) as err:
        load_rgb(tmp_path / "huge.png", MAX_PIXELS)
    assert err.value.reason == "too_many_pixels"


def test_png_named_jpg_is_just_an_image(tmp_path):
    path = save(Image.new("RGB", (20, 30), (10, 200, 30)), tmp_path / "p.jpg", "PNG")
    assert load_rgb(path, MAX_PIXELS).getpixel((5, 5)) == (10, 200, 30)


@pytest.mark.parametrize(
    "mode, fmt, color",
    [
        ("L", "JPEG", 128),
        ("1", "PNG", 1),
        ("CMYK", "JPEG", (0, 0, 0, 0)),
        ("I;16", "PNG", 65535),
    ],
)
def test_other_modes_become_rgb(tmp_path, mode, fmt, color):
    path = save(Image.new(mode, (20, 30), color), tmp_path / "p.img", fmt)
    image = load_rgb(path, MAX_PIXELS)
    assert image.mode == "RGB" and image.size == (20, 30)
    r, g, b = image.getpixel((3, 3))
    assert r == g == b and r > 100  # grey or white stays grey or white


def test_palette_image_becomes_rgb(tmp_path):
    path = save(Image.new("RGB", (20, 30), (200, 10, 10)).convert("P"), tmp_path / "p.gif", "GIF")
    image = load_rgb(path, MAX_PIXELS)
    assert image.mode == "RGB" and image.getpixel((1, 1))[0] > 150


def test_transparency_is_laid_over_white(tmp_path):
    rgba = Image.new("RGBA", (20, 30), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 10, 30))
    image = load_rgb(save(rgba, tmp_path / "p.png", "PNG"), MAX_PIXELS)
    assert image.getpixel((2, 2)) == (255, 0, 0)
    assert image.getpixel((15, 2)) == (255, 255, 255)


def test_resize_variants_have_requested_shapes():
    arrays = resize_variants(random_image(182, 268), [(64, 64), (100, 150), (224, 224)])
    assert [a.shape for a in arrays] == [(64, 64, 3), (150, 100, 3), (224, 224, 3)]
    assert all(a.dtype == np.uint8 for a in arrays)


def make_poster_set(folder: Path) -> tuple[list[str], list[Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    ids, paths = [], []
    for i in range(150):
        path = folder / f"{i}.jpg"
        if i == 7:
            path.write_bytes(b"")
        elif i == 30:
            path.write_text("not an image")
        elif i == 99:
            path.write_bytes(png_header_claiming(30000, 30000))
        elif i == 120:
            pass  # missing
        elif i == 121:
            path.write_bytes(jpeg_bytes(36, 54, (i, 255 - i, 100))[:300])  # truncated
        elif i == 122:
            save(Image.new("RGBA", (36, 54), (i, 255 - i, 100, 255)), path, "PNG")  # PNG as .jpg
        elif i == 123:
            save(Image.new("CMYK", (36, 54), (0, 0, 0, 0)), path, "JPEG")
        elif i == 124:
            save(Image.new("L", (36, 54), 124), path, "JPEG")
        elif i == 125:
            save(Image.new("RGB", (36, 54), (i, 255 - i, 100)).convert("P"), path, "GIF")
        else:
            path.write_bytes(jpeg_bytes(36, 54, (i, 255 - i, 100)))
        ids.append(f"m{i}")
        paths.append(path)
    return ids, paths


@pytest.mark.parametrize("workers", [1, 2])
def test_resize_writes_every_size_and_lists_rejects(tmp_path, workers):
    ids, paths = make_poster_set(tmp_path / "posters")
    out = tmp_path / "resized"
    report = resize_posters(
        ids, paths, ["16x16", "20x30"], out, workers=workers, max_pixels=MAX_PIXELS, progress=False
    )
    assert report["posters_in"] == 150
    assert report["posters_ok"] + report["posters_rejected"] == 150
    assert report["rejected_by_reason"] == {
        "decode_error": 1,
        "empty_file": 1,
        "missing_file": 1,
        "not_an_image": 1,
        "too_many_pixels": 1,
    }
    bad = ["m7", "m30", "m99", "m120", "m121"]
    assert [r["id"] for r in report["rejects"]] == bad
    with open(out / "manifest.csv", newline="") as f:
        manifest = [row["id"] for row in csv.DictReader(f)]
    assert manifest == [i for i in ids if i not in bad]
    small, tall = np.load(out / "16x16.npy"), np.load(out / "20x30.npy")
    assert small.shape == (145, 16, 16, 3) and tall.shape == (145, 30, 20, 3)
    # Row k holds the poster named in manifest row k: its red channel is its number (the CMYK
    # white and the grey poster aside).
    for row, movie_id in enumerate(manifest):
        expected = {"m123": 255}.get(movie_id, int(movie_id[1:]))
        assert abs(int(small[row, 8, 8, 0]) - expected) <= 3, movie_id
    assert json.loads((out / "resize_report.json").read_text()) == report
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_parallel_and_serial_resize_give_identical_arrays(tmp_path):
    ids, paths = make_poster_set(tmp_path / "posters")
    for workers in (1, 2):
        resize_posters(ids, paths, ["16x16"], tmp_path / f"out{workers}", workers=workers, progress=False)
    assert (tmp_path / "out1" / "16x16.npy").read_bytes() == (tmp_path / "out2" / "16x16.npy").read_bytes()


def test_failed_resize_leaves_no_output(tmp_path, monkeypatch):
    ids, paths = make_poster_set(tmp_path / "posters")
    import postergenre.core.images as images

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(images, "_compact", boom)
    with pytest.raises(RuntimeError):
        resize_posters(ids, paths, ["16x16"], tmp_path / "out", workers=1, progress=False)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "posters"]


def test_resize_matches_torch_public_interpolate_and_pillow_within_one_level():
    import torch
    import torch.nn.functional as F

    image = random_image(182, 268, seed=3)
    ours = resize_variants(image, [(64, 64), (224, 224)])
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]
    for (w, h), arr in zip([(64, 64), (224, 224)], ours, strict=True):
        public = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True)[0].permute(1, 2, 0)
        assert np.array_equal(arr, public.numpy())
        pillow = np.asarray(image.resize((w, h), Image.BILINEAR)).astype(int)
        assert np.abs(arr.astype(int) - pillow).max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (30, 45), (200, 40, 40))
    image.paste((0, 0, 255), (0, 0, 30, 5))  # a blue band along the top
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: "rotate 90 degrees clockwise to display"
    path = save(image, tmp_path / "phone.jpg", "JPEG", exif=exif, quality=95)
    shown = load_rgb(path, MAX_PIXELS)
    assert shown.size == (45, 30)
    pixels = np.asarray(shown)
    assert pixels[:, -3:, 2].mean() > 200 and pixels[:, :3, 2].mean() < 100  # band now on the right


def test_a_big_file_is_streamed_not_read_whole(tmp_path, monkeypatch):
    import postergenre.core.images as images

    monkeypatch.setattr(images, "READ_WHOLE", 1000)  # as if the file were over 16 MiB
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read whole"))
    (tmp_path / "big.jpg").write_bytes(b"\0" * 5000)
    with pytest.raises(PosterError) as err:
        load_rgb(tmp_path / "big.jpg", MAX_PIXELS)
    assert err.value.reason == "not_an_image"
    path = save(random_image(40, 60), tmp_path / "real.jpg", "JPEG")
    assert load_rgb(path, MAX_PIXELS).size == (40, 60)


def test_a_killed_resize_leaves_nothing_the_next_run_does_not_remove(tmp_path):
    import subprocess
    import sys

    for i in range(3):
        save(random_image(30, 45, seed=i), tmp_path / f"{i}.jpg", "JPEG")
    # a writer killed with SIGKILL: its temporary folder stays, under a pid that is gone
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / f".resized.tmp-{dead}"
    (stale / "sub").mkdir(parents=True)
    (stale / "64x64.npy").write_bytes(b"\0" * 1000)
    (tmp_path / f".resized.old-{dead}").mkdir()
    live = tmp_path / ".resized.tmp-1"  # pid 1 is alive: another writer's, left alone
    live.mkdir()
    resize_posters(
        ["a", "b", "c"],
        [tmp_path / f"{i}.jpg" for i in range(3)],
        ["8x12"],
        tmp_path / "resized",
        workers=1,
        max_pixels=MAX_PIXELS,
    )
    assert not stale.exists() and not (tmp_path / f".resized.old-{dead}").exists()
    assert live.exists() and (tmp_path / "resized" / "8x12.npy").is_file()

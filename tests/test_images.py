"""Tests for landmark_finder.core.images: formats, modes, orientation, resizing, errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landmark_finder.core.images import (
    IMAGE_EXTENSIONS,
    ImageInfo,
    ImageLoadError,
    content_hash,
    image_info,
    iter_image_files,
    load_image,
)

GALLERY = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "landmarks"
    / "indian-monuments"
    / "gallery"
)


def real_jpeg() -> Path:
    files = sorted(GALLERY.glob("*/*.jpg")) if GALLERY.is_dir() else []
    if not files:
        pytest.skip("shared landmark gallery not available")
    return files[0]


def assert_rgb(im: Image.Image) -> None:
    assert isinstance(im, Image.Image) and im.mode == "RGB"


def load_error(source, **kw) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as ei:
        load_image(source, **kw)
    msg = str(ei.value)
    assert "\n" not in msg and msg.strip() == msg
    return ei.value


def px(im: Image.Image, xy=(0, 0)) -> tuple[int, ...]:
    return im.getpixel(xy)


def close(a, b, tol=6) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# --- orientation and size ---------------------------------------------------------


def test_exif_orientation_6_rotates(tmp_path):
    im = Image.new("RGB", (200, 100), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 30, 30))  # red marker top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    p = tmp_path / "rot.jpg"
    im.save(p, quality=95, exif=exif)
    out = load_image(p)
    assert_rgb(out)
    assert out.size == (100, 200)
    # top-left moves to top-right after a clockwise rotation
    assert close(px(out, (90, 10)), (255, 0, 0), 40)
    assert close(px(out, (10, 10)), (0, 0, 255), 40)
    # downscaling (JPEG draft path) must respect the rotation too
    small = load_image(p, max_side=50)
    assert small.size == (25, 50)
    assert image_info(p) == ImageInfo("JPEG", 100, 200, "RGB", 1)


def test_max_side_downscale_and_no_upscale(tmp_path):
    p = tmp_path / "big.jpg"
    Image.new("RGB", (1600, 1200), (10, 200, 30)).save(p)
    out = load_image(p, max_side=300)
    assert out.size == (300, 225)
    assert close(px(out, (150, 100)), (10, 200, 30), 8)
    assert load_image(p, max_side=5000).size == (1600, 1200)
    q = tmp_path / "big.png"
    Image.new("RGB", (90, 300), "white").save(q)
    assert load_image(q, max_side=100).size == (30, 100)
    assert load_image(q, max_side=1000).size == (90, 300)


def test_real_jpeg_draft_matches_full_decode():
    p = real_jpeg()
    full = load_image(p)
    small = load_image(p, max_side=224)
    assert_rgb(small)
    assert max(small.size) == 224 or max(full.size) <= 224
    ref = full.resize(small.size, Image.Resampling.LANCZOS)
    diff = np.abs(np.asarray(ref, np.int16) - np.asarray(small, np.int16)).mean()
    assert diff < 6


def test_draft_slack_decodes_big_jpegs_one_scale_smaller(tmp_path):
    """A 4000-px JPEG asked for at 512 px: 1/8 scale (500 px) with slack, 1/4 + resize without."""
    p = tmp_path / "phone.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), np.uint8)).save(p)
    assert load_image(p, max_side=512).size == (512, 384)
    assert load_image(p, max_side=512, draft_slack=0.9).size == (500, 375)
    assert load_image(p, max_side=400, draft_slack=0.9).size == (400, 300)  # 1/8 too small
    with pytest.raises(ValueError, match="draft_slack"):
        load_image(p, max_side=512, draft_slack=0)


# --- modes ------------------------------------------------------------------------


def test_rgba_png_composited_on_white(tmp_path):
    im = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # fully transparent red
    im.paste((0, 0, 255, 255), (10, 0, 20, 20))
    p = tmp_path / "a.png"
    im.save(p)
    out = load_image(p)
    assert_rgb(out)
    assert px(out, (2, 2)) == (255, 255, 255)
    assert px(out, (15, 5)) == (0, 0, 255)


def test_big_translucent_png_reduced_as_composited_then_resized(tmp_path):
    """The loader box-reduces big photos strip by strip, compositing alpha before reducing:
    the same picture as compositing the whole photo over white and resizing it."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:1200, 0:1600]
    rgb = np.stack([x % 256, y % 256, (x * y) % 256], -1)
    alpha = np.clip(rng.normal(128, 80, (1200, 1600)), 0, 255)
    im = Image.fromarray(np.dstack([rgb, alpha]).astype(np.uint8), "RGBA")
    im.save(tmp_path / "big.png")
    out = load_image(tmp_path / "big.png", max_side=200)  # reduced 2x, then resized
    white = Image.new("RGB", im.size, (255, 255, 255))
    white.paste(im, mask=im.getchannel("A"))
    want = white.resize(out.size, Image.Resampling.LANCZOS)
    diff = np.abs(np.asarray(out, np.int16) - np.asarray(want, np.int16))
    assert out.size == (200, 150) and diff.mean() < 1.0 and diff.max() <= 12, diff.max()


def test_la_png(tmp_path):
    im = Image.new("LA", (10, 10), (0, 0))
    im.paste((50, 255), (0, 0, 5, 10))
    p = tmp_path / "la.png"
    im.save(p)
    out = load_image(p)
    assert px(out, (1, 1)) == (50, 50, 50)
    assert px(out, (8, 8)) == (255, 255, 255)


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (10, 10), 0)
    im.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    im.paste(1, (5, 0, 10, 10))
    p = tmp_path / "p.png"
    im.save(p, transparency=0)
    out = load_image(p)
    assert_rgb(out)
    assert px(out, (1, 1)) == (255, 255, 255)
    assert px(out, (7, 7)) == (0, 255, 0)


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(p, quality=95)  # red
    out = load_image(p)
    assert_rgb(out)
    r, g, b = px(out, (20, 15))
    assert r > 200 and g < 60 and b < 60
    assert load_image(p, max_side=10).size == (10, 8)


def test_16bit_grey_png_scaled_not_clipped(tmp_path):
    arr = np.full((8, 8), 32768, np.uint16)
    arr[0, 0] = 65535
    arr[0, 1] = 0
    p = tmp_path / "g16.png"
    Image.fromarray(arr).save(p)
    assert Image.open(p).mode.startswith("I")
    out = load_image(p)
    assert_rgb(out)
    assert abs(px(out, (4, 4))[0] - 128) <= 1
    assert px(out, (0, 0)) == (255, 255, 255)
    assert px(out, (1, 0)) == (0, 0, 0)


def test_float_and_int32_tiff(tmp_path):
    f = tmp_path / "f.tif"
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(f)
    assert abs(px(load_image(f))[0] - 128) <= 1
    i = tmp_path / "i.tif"
    Image.fromarray(np.full((4, 4), 100, np.int32)).save(i)
    assert px(load_image(i)) == (100, 100, 100)


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = load_image(p)
    assert_rgb(out)
    assert close(px(out, (8, 8)), (255, 0, 0), 10)
    assert image_info(p).n_frames == 3


@pytest.mark.parametrize(
    ("fmt", "ext"), [("TIFF", "tif"), ("WEBP", "webp"), ("BMP", "bmp"), ("PNG", "png")]
)
def test_other_formats(tmp_path, fmt, ext):
    p = tmp_path / f"x.{ext}"
    Image.new("RGB", (32, 24), (200, 100, 50)).save(
        p, format=fmt, **({"quality": 95} if fmt == "WEBP" else {})
    )
    out = load_image(p)
    assert_rgb(out)
    assert out.size == (32, 24)
    assert close(px(out, (16, 12)), (200, 100, 50), 8)
    assert image_info(p).format == fmt


def test_grayscale_and_bilevel(tmp_path):
    p = tmp_path / "l.jpg"
    Image.new("L", (20, 10), 77).save(p)
    assert close(px(load_image(p, max_side=8), (2, 2)), (77, 77, 77), 3)
    b = tmp_path / "b.png"
    Image.new("1", (8, 8), 1).save(b)
    assert px(load_image(b)) == (255, 255, 255)


def test_heic_round_trip(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    if not pillow_heif.libheif_info().get("encoders", {}).get(
        "x265"
    ) and not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("no HEIF encoder")
    p = tmp_path / "x.heic"
    try:
        Image.new("RGB", (64, 48), (30, 160, 220)).save(p, format="HEIF", quality=95)
    except Exception as e:  # pragma: no cover - encoder missing at runtime
        pytest.skip(f"HEIF encoder unavailable: {e}")
    out = load_image(p)
    assert_rgb(out)
    assert out.size == (64, 48)
    assert close(px(out, (32, 24)), (30, 160, 220), 12)
    assert load_image(p, max_side=32).size == (32, 24)


# --- inputs -----------------------------------------------------------------------


def test_bytes_and_stream_input(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (10, 5), (1, 2, 3)).save(buf, format="PNG")
    assert load_image(buf.getvalue()).size == (10, 5)
    assert load_image(bytearray(buf.getvalue())).size == (10, 5)
    buf.seek(0)
    assert load_image(buf, max_side=4).size == (4, 2)
    err = load_error(b"hello", name="upload.jpg")
    assert str(err).startswith("upload.jpg: not an image")
    assert str(load_error(b"")).startswith("<bytes>: empty file")


# --- errors -----------------------------------------------------------------------


def test_empty_file(tmp_path):
    p = tmp_path / "x.jpg"
    p.write_bytes(b"")
    err = load_error(p)
    assert "x.jpg" in str(err) and "empty file" in str(err)


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "photo.jpg"
    p.write_text("this is not an image\nat all\n")
    err = load_error(p)
    assert str(err) == f"{p}: not an image (unrecognised format)"
    with pytest.raises(ImageLoadError):
        image_info(p)


def test_truncated_jpeg(tmp_path):
    data = real_jpeg().read_bytes()
    p = tmp_path / "trunc.jpg"
    p.write_bytes(data[: len(data) // 2])
    err = load_error(p)
    assert "trunc.jpg" in str(err) and "truncated or corrupt" in str(err)
    load_error(p, max_side=64)  # draft path too


def test_truncated_png(tmp_path):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    data = buf.getvalue()
    p = tmp_path / "trunc.png"
    p.write_bytes(data[: len(data) // 2])
    err = load_error(p)
    assert "trunc.png" in str(err) and "truncated or corrupt" in str(err)
    p.write_bytes(data[:40])  # cut inside the header chunks
    assert "trunc.png" in str(load_error(p))


def test_missing_file_and_directory(tmp_path):
    err = load_error(tmp_path / "nope.jpg")
    assert "nope.jpg" in str(err) and "no such file" in str(err)
    d = tmp_path / "folder.jpg"
    d.mkdir()
    err = load_error(d)
    assert "folder.jpg" in str(err) and "directory" in str(err)
    with pytest.raises(ImageLoadError):
        content_hash(d)
    with pytest.raises(ImageLoadError):
        content_hash(tmp_path / "nope.jpg")


def test_decompression_bomb(tmp_path):
    p = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(p)  # 400 Mpx, a few hundred KB on disk
    assert p.stat().st_size < 2_000_000
    err = load_error(p)  # Pillow's own limit trips before ours
    assert "bomb.png" in str(err) and "too large" in str(err)
    q = tmp_path / "big.png"
    Image.new("1", (3000, 2000)).save(q)
    err = load_error(q, max_pixels=1_000_000)
    assert str(err) == f"{q}: image too large (3000x2000 = 6.0 Mpx, limit 1 Mpx)"
    assert load_image(q, max_side=30).size == (30, 20)


# --- files ------------------------------------------------------------------------


def test_iter_image_files(tmp_path):
    for rel in [
        "a.jpg",
        "b.PNG",
        "sub/c.jpeg",
        "sub/deep/d.HEIC",
        "e.tiff",
        "f.webp",
        "g.gif",
        "h.bmp",
        "i.JFIF",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    for rel in [
        ".DS_Store",
        "._a.jpg",
        "Thumbs.db",
        "notes.txt",
        ".hidden/x.jpg",
        "sub/.git/y.png",
        "__MACOSX/z.jpg",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "dir.jpg").mkdir()
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)]
    assert found == sorted(found)
    assert set(found) == {
        "a.jpg",
        "b.PNG",
        "sub/c.jpeg",
        "sub/deep/d.HEIC",
        "e.tiff",
        "f.webp",
        "g.gif",
        "h.bmp",
        "i.JFIF",
    }
    flat = {p.name for p in iter_image_files(tmp_path, recursive=False)}
    assert flat == {"a.jpg", "b.PNG", "e.tiff", "f.webp", "g.gif", "h.bmp", "i.JFIF"}
    assert ".heic" in IMAGE_EXTENSIONS and ".jpg" in IMAGE_EXTENSIONS
    with pytest.raises(NotADirectoryError):
        iter_image_files(tmp_path / "missing")


def test_content_hash(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"abc")
    assert content_hash(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

"""Property tests for the image loader (hypothesis): whatever the bytes, shape, mode, format,
EXIF orientation or requested size, ``load_image`` returns an upright RGB image of the size
asked for, or raises ``ImageLoadError`` with one line, never anything else."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from landmark_finder.core.images import ImageLoadError, load_image

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FORMATS = {
    "JPEG": ("L", "RGB", "CMYK"),
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),
    "WEBP": ("RGB", "RGBA"),
    "GIF": ("L", "P"),
    "TIFF": ("1", "L", "RGB", "RGBA", "CMYK", "I;16", "I", "F"),
    "BMP": ("1", "L", "P", "RGB"),
}


@st.composite
def images(draw) -> tuple[bytes, str, tuple[int, int], int]:
    """(encoded bytes, format, stored size, EXIF orientation) of a random small picture."""
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[fmt]))
    w = draw(st.integers(1, 300))
    h = draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    elif mode == "I":
        img = Image.fromarray(rng.integers(-(2**20), 2**20, (h, w), dtype=np.int32))
    elif mode == "F":
        img = Image.fromarray(rng.random((h, w), dtype=np.float32))
    elif mode in ("P", "PA"):
        img = rgb.quantize(16)
    else:
        img = rgb.convert(mode)
    orientation = draw(st.integers(1, 8)) if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else 1
    kw: dict = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue(), fmt, (w, h), orientation


def upright(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


@SETTINGS
@given(images(), st.one_of(st.none(), st.integers(1, 400)))
def test_any_image_loads_upright_rgb_at_the_size_asked(sample, max_side):
    data, fmt, size, orientation = sample
    img = load_image(data, max_side=max_side, name=f"x.{fmt.lower()}")
    assert img.mode == "RGB"
    want = upright(size, orientation)
    if max_side is None or max(want) <= max_side:
        assert img.size == want
    else:
        assert max(img.size) == max_side
        ratio, got = want[0] / want[1], img.size[0] / img.size[1]
        # rounding to whole pixels: at most one pixel off on the short side
        short = min(img.size)
        assert abs(got - ratio) / max(ratio, 1 / ratio) <= 1.0 / max(short - 1, 1) + 1e-6


@SETTINGS
@given(images(), st.floats(0, 1), st.one_of(st.none(), st.integers(8, 256)))
def test_truncated_image_loads_or_fails_with_one_line(sample, where, max_side):
    data, fmt, _, _ = sample
    cut = data[: int(len(data) * where)]
    try:
        img = load_image(cut, max_side=max_side, name="cut.img")
    except ImageLoadError as e:
        msg = str(e)
        assert msg.startswith("cut.img: ") and "\n" not in msg
    else:
        assert img.mode == "RGB"


@settings(max_examples=150, deadline=None)
@given(
    st.binary(max_size=4096),
    st.sampled_from(
        [
            b"",
            b"\xff\xd8\xff",
            b"\x89PNG\r\n\x1a\n",
            b"GIF89a",
            b"RIFF\x00\x00\x00\x00WEBP",
            b"II*\x00",
            b"BM",
        ]
    ),
)
def test_arbitrary_bytes_never_raise_anything_else(body, magic):
    try:
        img = load_image(magic + body, max_side=64, name="junk.jpg")
    except ImageLoadError as e:
        assert str(e).startswith("junk.jpg: ") and "\n" not in str(e)
    else:
        assert img.mode == "RGB" and max(img.size) <= 64


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(200, 900), st.integers(200, 900), st.integers(16, 150))
def test_reduced_decode_matches_full_decode(w, h, max_side):
    """Box reduction before conversion gives the picture a full decode plus resize gives"""
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.uint8)
    alpha = (100 + 155 * np.abs(np.sin(x / 37.0) * np.cos(y / 23.0))).astype(np.uint8)[..., None]
    buf = io.BytesIO()
    Image.fromarray(np.concatenate([a, alpha], -1), "RGBA").save(buf, format="PNG")
    small = load_image(buf.getvalue(), max_side=max_side)
    full = load_image(buf.getvalue())
    ref = full.resize(small.size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    diff = np.abs(np.asarray(ref, np.int16) - np.asarray(small, np.int16))
    assert diff.mean() < 1.5 and diff.max() <= 8, (diff.mean(), diff.max())


@pytest.mark.parametrize("limit", [10_000, 100_000])
def test_decoded_byte_limit(limit):
    buf = io.BytesIO()
    Image.new("RGBA", (200, 200)).save(buf, format="PNG")  # 160 kB decoded
    with pytest.raises(ImageLoadError, match="image too large to decode"):
        load_image(buf.getvalue(), max_bytes=limit, name="a.png")
    assert load_image(buf.getvalue(), max_bytes=160_000, name="a.png").size == (200, 200)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_reduced_decode_of_turned_photo_stays_in_place(orientation):
    """A red corner block ends up where a full decode puts it, for all 8 EXIF turns."""
    im = Image.new("RGB", (997, 601), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 200, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "PNG", exif=exif)
    full = load_image(buf.getvalue())
    small = load_image(buf.getvalue(), max_side=50)
    assert max(small.size) == 50
    ref = full.resize(small.size, Image.Resampling.LANCZOS)
    diff = np.abs(np.asarray(ref, np.int16) - np.asarray(small, np.int16))
    assert diff.mean() < 0.5 and diff.max() <= 8

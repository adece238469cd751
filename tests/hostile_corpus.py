"""A generated corpus of hostile photo files: what a careless or malicious user can put in a
folder or upload. Used by tests/test_hostile.py and bench/hostile.py.

Every file is made here from a small synthetic picture (or, when given, a real photo), so the
corpus is the same on every machine. ``make_corpus(folder)`` writes:

* truncations of JPEG, PNG, WebP, GIF and TIFF at many offsets, and random byte damage;
* decompression bombs (huge dimensions in a few KB; ``big=True`` adds the 616 KB 16-bit RGBA
  PNG of 8900×8900, which inflates to 634 MB);
* extreme shapes (1×10000, 10000×1, 2×5000, 5000×3, 1×1), 16-bit, CMYK, palette+alpha, LA,
  bilevel, float and int32 TIFF, fully transparent, animated GIF/PNG/WebP;
* all eight EXIF orientations, malformed EXIF and ICC blocks;
* junk bytes, text, other formats (ICO, PCX, EPS, PSD) and empty files under image names;
* a FIFO, a link to /dev/zero, a dangling link and links to folders (``specials=True``).

Returns ``{relative name: kind}``; ``kind`` says what the file is, for messages.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

SHAPES = [(1, 10000), (10000, 1), (2, 5000), (5000, 3), (1, 1), (3, 3), (1, 2), (640, 7)]


def _picture(size: tuple[int, int] = (320, 240), seed: int = 0) -> Image.Image:
    """Smooth colour gradients plus a few blocks: compresses like a photo, decodes anywhere."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    a = np.stack([(x / w) * 255, (y / h) * 255, ((x + y) / (w + h)) * 255], -1)
    for _ in range(6):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        a[y0 : y0 + h // 5, x0 : x0 + w // 5] = rng.integers(0, 255, 3)
    return Image.fromarray(a.astype(np.uint8), "RGB")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(w: int, h: int, bitdepth: int = 8, colortype: int = 2, level: int = 9) -> bytes:
    """A PNG of zeros, written row by row (never holding the decoded image): a bomb maker."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colortype]
    row = b"\x00" * (1 + w * channels * bitdepth // 8)
    c = zlib.compressobj(level)
    rows_per_call = max(1, (8 << 20) // len(row))
    block = row * rows_per_call
    parts, left = [], h
    while left > 0:
        n = min(left, rows_per_call)
        parts.append(c.compress(block if n == rows_per_call else row * n))
        left -= n
    parts.append(c.flush())
    ihdr = struct.pack(">IIBBBBB", w, h, bitdepth, colortype, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def _png16(arr: np.ndarray) -> bytes:
    """16-bit grey/RGB/RGBA PNG of a uint16 (h, w[, c]) array (Pillow cannot write these)."""
    a = arr if arr.ndim == 3 else arr[..., None]
    h, w, c = a.shape
    colortype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colortype, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def _jpeg_with_app1(img: Image.Image, payload: bytes) -> bytes:
    """A JPEG whose first segment after SOI is an APP1 block with ``payload``."""
    data = _encode(img, "JPEG", quality=85)
    seg = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + seg + data[2:]


def _huge_jpeg_header(img: Image.Image, w: int, h: int) -> bytes:
    """A small JPEG whose frame header claims ``w``×``h``."""
    data = bytearray(_encode(img, "JPEG"))
    i = data.find(b"\xff\xc0")
    data[i + 5 : i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def make_corpus(
    folder: Path, photo: Path | None = None, big: bool = False, specials: bool = True
) -> dict[str, str]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, str] = {}

    def put(name: str, data: bytes, kind: str) -> None:
        (folder / name).write_bytes(data)
        kinds[name] = kind

    base = _picture()
    if photo is not None:
        with Image.open(photo) as im:
            base = im.convert("RGB")
            base.thumbnail((320, 320))
    encoded = {
        "jpg": _encode(base, "JPEG", quality=85),
        "png": _encode(base, "PNG"),
        "webp": _encode(base, "WEBP", quality=80),
        "gif": _encode(base.convert("P"), "GIF"),
        "tif": _encode(base, "TIFF", compression="tiff_deflate"),
        "bmp": _encode(base, "BMP"),
    }
    for ext, data in encoded.items():
        put(f"ok.{ext}", data, "valid")
    # Truncations: the first bytes densely (headers), then spread over the file.
    for ext in ("jpg", "png", "webp", "gif", "tif"):
        data = encoded[ext]
        cuts = sorted({1, 2, 4, 8, 12, 16, 24, 33, 50, 64, 100, 200}) + [
            int(len(data) * f) for f in np.linspace(0.05, 0.98, 10)
        ]
        for c in sorted(set(cuts)):
            if 0 < c < len(data):
                put(f"trunc-{ext}-{c}.{ext}", data[:c], "truncated")
    # Random byte damage after the header.
    rng = np.random.default_rng(14)
    for ext in ("jpg", "png", "webp", "tif"):
        data = encoded[ext]
        for k in range(6):
            b = bytearray(data)
            for pos in rng.integers(16, len(b), 8 + 8 * k):
                b[pos] = int(rng.integers(0, 256))
            put(f"damaged-{ext}-{k}.{ext}", bytes(b), "damaged")
    # Bombs: huge dimensions in a few bytes.
    put("bomb-bilevel-20000.png", raw_png(20000, 20000, 1, 0), "bomb")
    put("bomb-grey-9500.png", raw_png(9500, 9500, 8, 0), "bomb")
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
    put("bomb-ihdr-only.png", b"\x89PNG\r\n\x1a\n" + ihdr + _chunk(b"IEND", b""), "bomb")
    put("bomb-jpeg-header.jpg", _huge_jpeg_header(base, 65000, 65000), "bomb")
    gif = bytearray(encoded["gif"])
    gif[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen
    put("bomb-gif-screen.gif", bytes(gif), "bomb")
    if big:
        put("bomb-rgba16-8900.png", raw_png(8900, 8900, 16, 6), "bomb")
    # Extreme shapes.
    for w, h in SHAPES:
        img = _picture((w, h), seed=w + h)
        put(f"shape-{w}x{h}.png", _encode(img, "PNG"), "shape")
        put(f"shape-{w}x{h}.jpg", _encode(img, "JPEG"), "shape")
    # Modes.
    g16 = (np.asarray(base.convert("L"), np.uint16) * 257).astype(np.uint16)
    put("mode-grey16.png", _encode(Image.fromarray(g16), "PNG"), "mode")
    rgb16 = np.asarray(base, np.uint16) * 257
    put("mode-rgb16.png", _png16(rgb16), "mode")
    alpha = np.full(rgb16.shape[:2] + (1,), 40000, np.uint16)
    put("mode-rgba16.png", _png16(np.concatenate([rgb16, alpha], -1)), "mode")
    put("mode-cmyk.jpg", _encode(base.convert("CMYK"), "JPEG"), "mode")
    put("mode-cmyk.tif", _encode(base.convert("CMYK"), "TIFF"), "mode")
    pa = base.convert("P")
    put("mode-palette-alpha.png", _encode(pa, "PNG", transparency=0), "mode")
    put("mode-pa.tif", _encode(base.convert("RGBA").quantize(64).convert("PA"), "TIFF"), "mode")
    put("mode-la.png", _encode(base.convert("LA"), "PNG"), "mode")
    put("mode-bilevel.png", _encode(base.convert("1"), "PNG"), "mode")
    put("mode-bilevel.tif", _encode(base.convert("1"), "TIFF", compression="group4"), "mode")
    f32 = np.asarray(base.convert("L"), np.float32) / 255
    put("mode-float.tif", _encode(Image.fromarray(f32), "TIFF"), "mode")
    i32 = np.asarray(base.convert("L"), np.int32) * 1000
    put("mode-int32.tif", _encode(Image.fromarray(i32), "TIFF"), "mode")
    f_nan = np.full((16, 16), np.nan, np.float32)
    put("mode-float-nan.tif", _encode(Image.fromarray(f_nan), "TIFF"), "mode")
    put("mode-transparent.png", _encode(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), "PNG"), "mode")
    put("mode-rgba.webp", _encode(base.convert("RGBA"), "WEBP", lossless=True), "mode")
    put("mode-grey.jpg", _encode(base.convert("L"), "JPEG"), "mode")
    put("mode-ycbcr.tif", _encode(base, "TIFF", compression="jpeg"), "mode")
    # Animated.
    frames = [_picture((96, 64), seed=s) for s in range(4)]
    for ext, fmt in (("gif", "GIF"), ("png", "PNG"), ("webp", "WEBP")):
        buf = io.BytesIO()
        frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=80)
        put(f"animated.{ext}", buf.getvalue(), "animated")
    # EXIF and ICC.
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        put(f"exif-orientation-{o}.jpg", _encode(base, "JPEG", exif=exif), "exif")
    for o in (0, 9, 65535):
        exif = Image.Exif()
        exif[0x0112] = o
        put(f"exif-orientation-bad-{o}.jpg", _encode(base, "JPEG", exif=exif), "exif")
    put("exif-garbage.jpg", _jpeg_with_app1(base, b"Exif\x00\x00" + bytes(range(256)) * 4), "exif")
    put("exif-loop.jpg", _jpeg_with_app1(base, b"Exif\x00\x00II*\x00\x08\x00\x00\x00"), "exif")
    put("exif-short.jpg", _jpeg_with_app1(base, b"Exif\x00\x00MM\x00*"), "exif")
    png_exif = _encode(base, "PNG", exif=b"Exif\x00\x00garbage-exif-block" * 3)
    put("exif-garbage.png", png_exif, "exif")
    put("icc-garbage.jpg", _encode(base, "JPEG", icc_profile=bytes(range(256)) * 8), "icc")
    put("icc-garbage.png", _encode(base, "PNG", icc_profile=b"not an icc profile" * 20), "icc")
    put("icc-empty.tif", _encode(base, "TIFF", icc_profile=b"\x00" * 4), "icc")
    # Junk under image names, other formats.
    for i, ext in enumerate(("jpg", "jpeg", "png", "webp", "gif", "tif", "bmp", "heic", "heif")):
        put(
            f"junk-{i}.{ext}", rng.integers(0, 256, 200 + 997 * i, dtype=np.uint8).tobytes(), "junk"
        )
    put(
        "junk-heic-brand.heic",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
        "junk",
    )
    put("junk-text.jpg", b"this is not an image\nat all\n" * 20, "junk")
    put("junk-zeros.png", b"\x00" * 4096, "junk")
    put("junk-one-byte.jpg", b"\xff", "junk")
    put("junk-jpeg-magic.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 100, "junk")
    put("junk-png-magic.png", b"\x89PNG\r\n\x1a\n" + b"\xff" * 100, "junk")
    put("junk-html.jpg", b"<html><script>alert(1)</script></html>", "junk")
    put("empty.jpg", b"", "empty")
    put("empty.png", b"", "empty")
    put("other-ico.png", _encode(base.resize((32, 32)), "ICO"), "other-format")
    put("other-pcx.jpg", _encode(base, "PCX"), "other-format")
    put(
        "other-eps.jpg",
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        "other-format",
    )
    put("other-psd.tif", b"8BPS\x00\x01" + b"\x00" * 200, "other-format")
    if specials:
        os.mkfifo(folder / "special-fifo.jpg")
        kinds["special-fifo.jpg"] = "special"
        for name, target in (
            ("special-dev-zero.jpg", "/dev/zero"),
            ("special-dangling.jpg", str(folder / "does-not-exist.jpg")),
            ("special-dir-link.jpg", str(folder.parent)),
            ("special-dir-link", str(folder.parent)),
        ):
            (folder / name).symlink_to(target)
            kinds[name] = "special"
    return kinds

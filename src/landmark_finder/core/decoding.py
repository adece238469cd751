"""Pixel work behind :func:`landmark_finder.core.images.load_image`: how many bytes a decode
takes, box reduction in strips, EXIF turns and conversion to 8-bit RGB. Kept apart so the
loader module stays about files and errors, this one about pixels."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

#: ``Image.info`` key set on a picture whose every pixel was fully transparent (nothing visible:
#: the content check answers "unknown" for it)
TRANSPARENT = "landmark_finder.fully_transparent"


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; alpha is composited over white, not black."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode.startswith("I") or mode == "F":
        a = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        hi = float(a.max()) if a.size else 0.0
        if mode == "F" and hi <= 1.0:
            a = a * 255.0  # float images are usually 0..1
        elif mode.startswith("I;16") or hi > 255:
            a = a / 257.0  # 16-bit range: 65535 -> 255, 32768 -> 128
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im if im.mode == "RGBA" else im.convert("RGBA")  # no copy of an RGBA image
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        alpha = rgba.getchannel("A")
        out.paste(rgba, mask=alpha)  # one canvas: no full-size temporaries
        if alpha.getextrema()[1] == 0:
            out.info[TRANSPARENT] = True
        return out
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...


def decoded_bytes(im: Image.Image) -> int:
    """Bytes of pixel data decoding ``im`` produces or the loader holds while converting it:
    the larger of the source samples (16-bit PNG/TIFF count double) and Pillow's storage after
    conversion (4 bytes a pixel except for grey and bilevel images)."""
    w, h = im.size
    bands = len(im.getbands())
    raw = " ".join(
        str(t.args[0] if isinstance(t.args, tuple) and t.args else t.args) for t in im.tile
    )
    sample = 4 if im.mode in ("I", "F") else 2 if ("16" in raw or "16" in im.mode) else 1
    storage = 1 if im.mode in ("1", "L") else 4
    return w * h * max(storage, bands * sample)


TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def orientation(im: Image.Image) -> int:
    """EXIF orientation (1..8); 1 when the tag is missing or the EXIF block is malformed."""
    try:
        value = im.getexif().get(0x0112, 1)
        return int(value) if int(value) in TRANSPOSE else 1
    except Exception:
        return 1  # malformed EXIF must not make a good photo unreadable


def _reducible(im: Image.Image) -> Image.Image:
    """``im`` in a mode ``Image.reduce`` averages correctly (palette indices and 16-bit grey
    cannot be averaged as they are)."""
    if im.mode == "1":
        return im.convert("L")
    if im.mode in ("P", "PA"):
        return im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    if im.mode.startswith("I;16"):
        return im.convert("I")
    return im


def reduce_strips(im: Image.Image, factor: int) -> Image.Image:
    """``im`` shrunk ``factor`` times by box averaging, strip by strip: Pillow's own reduce
    makes a full-size premultiplied copy of RGBA images (and converting 16-bit or palette
    images first would make another), so a 317 MB decoded RGBA photo would peak at twice that.
    A partial last block becomes a whole pixel, as in ``Image.reduce``; see :func:`extent`.

    Images with alpha come out as RGB composited over white (as :func:`to_rgb` does): each
    strip is composited, then reduced. Compositing is linear in the premultiplied colours, so
    this is the reduce-then-composite result, without Pillow's two premultiplying conversions
    per strip (0.92 of 2.4 s for an 8900² RGBA PNG)."""
    w, h = im.size
    rows = factor * max(1, (16 << 20) // (w * 4 * factor))  # ~16 MB strips, whole blocks
    parts = []
    for y in range(0, h, rows):
        strip = _reducible(im.crop((0, y, w, min(h, y + rows))))
        if "A" in strip.getbands() or "transparency" in strip.info:
            strip = to_rgb(strip)
        parts.append(strip.reduce(factor))
    out = Image.new(parts[0].mode, (math.ceil(w / factor), math.ceil(h / factor)))
    for i, part in enumerate(parts):
        out.paste(part, (0, i * rows // factor))
    if all(part.info.get(TRANSPARENT) for part in parts):
        out.info[TRANSPARENT] = True
    return out


def extent(
    size: tuple[int, int], factor: int, turn: int
) -> tuple[float, float, float, float] | None:
    """The box of the reduced, turned image that the original photo covers exactly.

    A partial last block (right column, bottom row) stands for less than a pixel; resizing
    with this box, as Pillow's own ``reducing_gap`` does, keeps the picture in place instead
    of shifting it by up to a pixel of the result. Which sides hold the partial blocks after
    the EXIF turn is found by turning a 3x3 marker."""
    w, h = size
    ex, ey = math.ceil(w / factor) - w / factor, math.ceil(h / factor) - h / factor
    if not ex and not ey:
        return None
    m = np.zeros((3, 3), np.uint8)
    m[:, -1] |= 1
    m[-1, :] |= 2
    if turn != 1:
        m = np.asarray(Image.fromarray(m).transpose(TRANSPOSE[turn]))

    def margin(side: np.ndarray) -> float:
        v = int(side.min())
        return (ex if v & 1 else 0.0) + (ey if v & 2 else 0.0)

    cw, ch = math.ceil(w / factor), math.ceil(h / factor)
    if turn in (5, 6, 7, 8):
        cw, ch = ch, cw
    return (margin(m[:, 0]), margin(m[0, :]), cw - margin(m[:, -1]), ch - margin(m[-1, :]))

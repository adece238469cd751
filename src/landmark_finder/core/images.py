"""The one place images are read from disk, bytes or streams.

Every caller (indexing, recognition, server, GUI) goes through `load_image`, so
photos look the same everywhere: RGB, EXIF orientation applied, transparency on
white, 16-bit scaled correctly, and any bad input becomes one `ImageLoadError`
with a one-line message instead of a zoo of Pillow exceptions.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from landmark_finder.errors import ImageLoadError

try:  # HEIC/HEIF (iPhone photos); optional so a missing wheel only breaks HEIC.
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except Exception:  # pragma: no cover - depends on the environment
    HEIF_AVAILABLE = False

#: Refuse images above this many pixels before decoding (phones go up to ~50 Mpx).
#: Pillow's own Image.MAX_IMAGE_PIXELS (~89 Mpx) still applies as an outer ceiling.
MAX_PIXELS = 80_000_000
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jfif", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif"}
)
# Only these decoders may run: keeps exotic/risky plugins (EPS→Ghostscript, etc.) out.
# (MPO, the multi-picture JPEG from cameras, is opened by the JPEG plugin.)
Image.init()
_FORMATS = [f for f in ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "HEIF") if f in Image.OPEN]
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_SKIP_NAMES = {"thumbs.db", "desktop.ini", "__macosx"}
#: ``Image.info`` key set on a loaded image whose every pixel was fully transparent.
TRANSPARENT = "landmark_finder.fully_transparent"


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int  # as displayed, i.e. after EXIF orientation
    height: int
    mode: str
    n_frames: int


def _os_reason(e: OSError) -> str:
    if isinstance(e, FileNotFoundError | NotADirectoryError):
        return "no such file"
    if isinstance(e, PermissionError):
        return "permission denied"
    return f"cannot read file ({e.strerror or e})"


def _open_source(
    source: str | os.PathLike | bytes | BinaryIO, name: str | None
) -> tuple[BinaryIO, str]:
    """Return a seekable binary stream and the name to use in errors."""
    if isinstance(source, bytes | bytearray | memoryview):
        name = name or "<bytes>"
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        name = name or str(path)
        try:
            st = os.stat(path)
            if stat.S_ISDIR(st.st_mode):
                raise ImageLoadError(name, "is a directory, not an image file")
            if not stat.S_ISREG(st.st_mode):  # FIFOs/devices would block or never end
                raise ImageLoadError(name, "not a regular file")
            if st.st_size == 0:
                raise ImageLoadError(name, "empty file")
            return open(path, "rb"), name
        except OSError as e:
            raise ImageLoadError(name, _os_reason(e)) from None
    else:
        name = name or os.fspath(getattr(source, "name", "") or "") or "<stream>"
        try:
            data = source.read()
        except Exception as e:
            raise ImageLoadError(name, f"cannot read stream ({e})") from None
    if not data:
        raise ImageLoadError(name, "empty file")
    return io.BytesIO(data), name


def _identify_error(fp: BinaryIO, name: str) -> ImageLoadError:
    fp.seek(0)
    head = fp.read(12)
    if (
        head[4:8] == b"ftyp"
        and head[8:12] in _HEIF_BRANDS
        or name.lower().endswith((".heic", ".heif"))
    ):
        if not HEIF_AVAILABLE:
            return ImageLoadError(name, "HEIC/HEIF image but pillow-heif is not installed")
    return ImageLoadError(name, "not an image (unrecognised format)")


def _open(fp: BinaryIO, name: str) -> Image.Image:
    """Image.open (header only) with every failure mapped to ImageLoadError."""
    try:
        return Image.open(fp, formats=_FORMATS)
    except UnidentifiedImageError:
        raise _identify_error(fp, name) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        m = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(m.group(1)) / 1e6:.1f} Mpx, " if m else ""
        raise ImageLoadError(name, f"image too large ({size}over Pillow's safety limit)") from None
    except Exception as e:
        raise ImageLoadError(
            name, f"truncated or corrupt image data ({type(e).__name__}: {e})"
        ) from None


def open_header(
    source: str | os.PathLike | bytes | BinaryIO, name: str | None = None
) -> Image.Image:
    """Open a photo lazily (header and metadata such as EXIF, no pixel decoding), through the
    same safeguards and restricted decoders as ``load_image``. Close it when done."""
    fp, name = _open_source(source, name)
    return _open(fp, name)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; alpha is composited over white, not black."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode.startswith("I") or mode == "F":
        a = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        hi = float(a.max()) if a.size else 0.0
        if mode == "F" and hi <= 1.0:
            a = a * 255.0  # float images are usually 0..1
        elif mode.startswith("I;16") or hi > 255:
            a = a / 257.0  # 16-bit range: 65535 -> 255, 32768 -> 128
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        out = Image.alpha_composite(
            Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba
        ).convert("RGB")
        if rgba.getchannel("A").getextrema()[1] == 0:
            out.info[TRANSPARENT] = True  # nothing visible: the content check says so
        return out
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...


def load_image(
    source: str | Path | bytes | BinaryIO,
    max_side: int | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
    name: str | None = None,
    draft_slack: float = 1.0,
) -> Image.Image:
    """Decode `source` to an upright RGB image, optionally with long side <= max_side.

    Size is checked from the header before decoding (decompression bombs); JPEGs
    are decoded at reduced scale via draft() when max_side allows it. Raises
    ImageLoadError for anything that is not a readable, supported image.

    ``draft_slack`` < 1 lets a JPEG come out as small as ``draft_slack * max_side`` when that
    lets the decoder scale by one more halving: a 4000-px phone photo asked for at 512 px is
    then decoded at 1/8 (500 px, nothing left to resize) instead of 1/4 (1000 px, resized),
    which took about half the time (140 ms instead of 260 ms under heavy load).
    """
    if max_side is not None and max_side < 1:
        raise ValueError("max_side must be >= 1")
    if not 0.0 < draft_slack <= 1.0:
        raise ValueError("draft_slack must be in (0, 1]")
    fp, name = _open_source(source, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(fp, name) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageLoadError(
                        name,
                        f"image too large ({w}x{h} = {w * h / 1e6:.1f} Mpx, limit "
                        f"{max_pixels / 1e6:g} Mpx)",
                    )
                try:
                    if (
                        max_side is not None
                        and im.format in ("JPEG", "MPO")
                        and max(w, h) > max_side
                    ):
                        # proportional, so EXIF rotation does not matter
                        s = max_side * draft_slack / max(w, h)
                        im.draft("RGB", (max(1, math.ceil(w * s)), max(1, math.ceil(h * s))))
                    im.load()
                    try:
                        ImageOps.exif_transpose(im, in_place=True)
                    except Exception:
                        pass  # malformed EXIF must not make a good photo unreadable
                    out = _to_rgb(im)
                except ImageLoadError:
                    raise
                except Exception as e:
                    raise ImageLoadError(
                        name, f"truncated or corrupt image data ({type(e).__name__}: {e})"
                    ) from None
                if out is im:
                    out = im.copy()  # detach from the file before it is closed
    finally:
        fp.close()
    if max_side is not None and max(out.size) > max_side:
        s = max_side / max(out.size)
        size = (max(1, round(out.width * s)), max(1, round(out.height * s)))
        transparent = out.info.get(TRANSPARENT)
        out = out.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        if transparent:
            out.info[TRANSPARENT] = True
    return out


def image_info(path: str | Path) -> ImageInfo:
    """Format, displayed size, mode and frame count from the header only (no decode)."""
    fp, name = _open_source(path, None)
    with fp, _open(fp, name) as im:
        w, h = im.size
        try:
            if im.getexif().get(0x0112) in (5, 6, 7, 8):
                w, h = h, w
        except Exception:
            pass
        return ImageInfo(im.format or "?", w, h, im.mode, int(getattr(im, "n_frames", 1)))


def iter_image_files(root: Path, recursive: bool = True) -> list[Path]:
    """Sorted image files under root by extension, skipping hidden and OS junk files."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d for d in dirnames if not d.startswith(".") and d.lower() not in _SKIP_NAMES
        ]
        for f in filenames:
            if f.startswith(".") or f.lower() in _SKIP_NAMES:
                continue  # also AppleDouble "._x.jpg"
            p = Path(dirpath, f)
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
                found.append(p)
        if not recursive:
            break
    return sorted(found)


def content_hash(path: str | Path) -> str:
    """sha256 hex of the file's bytes, so the index can detect changed or duplicate files."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as e:
        reason = (
            "is a directory, not an image file"
            if isinstance(e, IsADirectoryError)
            else _os_reason(e)
        )
        raise ImageLoadError(str(path), reason) from None
    return h.hexdigest()

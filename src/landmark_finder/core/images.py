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

from PIL import (  # the decoders allowed to run (_FORMATS): importing them registers them
    BmpImagePlugin,  # noqa: F401
    GifImagePlugin,  # noqa: F401
    Image,
    JpegImagePlugin,  # noqa: F401
    PngImagePlugin,  # noqa: F401
    TiffImagePlugin,  # noqa: F401
    UnidentifiedImageError,
    WebPImagePlugin,  # noqa: F401
)

from landmark_finder.core.decoding import (
    TRANSPARENT,
    TRANSPOSE,
    decoded_bytes,
    extent,
    orientation,
    reduce_strips,
    to_rgb,
)
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
#: Refuse images whose pixel data would exceed this many bytes, decoded or held while
#: converting (80 Mpx × 4 bytes: an ordinary 8-bit photo at the pixel limit). Catches what the
#: pixel count lets through only because its pixels are wide: a 601 KB 16-bit RGBA PNG of
#: 8900×8900 inflates to 634 MB and would take seconds and gigabytes to decode and convert.
MAX_DECODED_BYTES = 320_000_000
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jfif", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif"}
)
# Only these decoders may run: keeps exotic/risky plugins (EPS→Ghostscript, etc.) out.
# (MPO, the multi-picture JPEG from cameras, is opened by the JPEG plugin.) Importing just
# their plug-ins (at the top) registers them; ``Image.init()`` would import all ~40 (0.1 s at
# every start).
_FORMATS = [f for f in ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "HEIF") if f in Image.OPEN]
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_SKIP_NAMES = {"thumbs.db", "desktop.ini", "__macosx"}
#: ``Image.info`` key set on a loaded image whose every pixel was fully transparent.


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


def load_image(
    source: str | Path | bytes | BinaryIO,
    max_side: int | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_DECODED_BYTES,
    name: str | None = None,
    draft_slack: float = 1.0,
) -> Image.Image:
    """Decode ``source`` to an upright RGB image, with long side <= ``max_side`` if given.

    Ask for the size you need: the photo is decoded at the smallest cost that still gives it.
    JPEGs are decoded at 1/2, 1/4 or 1/8 scale by libjpeg (draft mode: a 12 Mpx phone photo
    for a 512 px network costs a sixteenth of a full decode); other formats are box-reduced
    right after decoding, before any conversion or rotation, so no full-size copies are made.
    Pixel count (``max_pixels``) and decoded bytes (``max_bytes``, see
    :data:`MAX_DECODED_BYTES`) are checked from the header before decoding. Raises
    :class:`ImageLoadError` (one line: ``<name>: <reason>``) for anything that is not a
    readable, supported image of acceptable size.

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
            warnings.simplefilter("ignore")  # "Corrupt EXIF data" etc.: handled, not shown
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(fp, name) as im:
                out, box = _decode(im, name, max_side, max_pixels, max_bytes, draft_slack)
    finally:
        fp.close()
    bw, bh = (out.width, out.height) if box is None else (box[2] - box[0], box[3] - box[1])
    if max_side is not None and max(bw, bh) > max_side:
        s = max_side / max(bw, bh)
        size = (max(1, round(bw * s)), max(1, round(bh * s)))
        transparent = out.info.get(TRANSPARENT)
        out = out.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
        if transparent:
            out.info[TRANSPARENT] = True
    return out


def _decode(
    im: Image.Image,
    name: str,
    max_side: int | None,
    max_pixels: int,
    max_bytes: int,
    draft_slack: float = 1.0,
) -> tuple[Image.Image, tuple[float, float, float, float] | None]:
    """The decoded, upright RGB image and the box of it the photo covers (see extent)."""
    w, h = im.size
    if w * h > max_pixels:
        raise ImageLoadError(
            name,
            f"image too large ({w}x{h} = {w * h / 1e6:.1f} Mpx, limit {max_pixels / 1e6:g} Mpx)",
        )
    try:
        if max_side is not None and im.format in ("JPEG", "MPO") and max(w, h) > max_side:
            # proportional, so EXIF rotation does not matter
            s = max_side * draft_slack / max(w, h)
            im.draft(im.mode, (max(1, math.ceil(w * s)), max(1, math.ceil(h * s))))
        need = decoded_bytes(im)
        if need > max_bytes:
            raise ImageLoadError(
                name,
                f"image too large to decode ({im.width}x{im.height} {im.mode}, "
                f"{need / 1e6:.0f} MB of pixel data, limit {max_bytes / 1e6:g} MB)",
            )
        im.load()
        turn = orientation(im)  # after load: a PNG may carry its eXIf chunk after the pixels
        work, box = im, None
        if max_side is not None:
            # Pillow's own reducing_gap=3: box-reduce, leave LANCZOS the last 3-6x
            factor = int(max(work.size) / max_side / 3)
            if factor >= 2:
                box = extent(work.size, factor, turn)
                work = reduce_strips(work, factor)
        if turn != 1:
            work = work.transpose(TRANSPOSE[turn])
        out = to_rgb(work)
    except ImageLoadError:
        raise
    except Exception as e:
        raise ImageLoadError(
            name, f"truncated or corrupt image data ({type(e).__name__}: {e})"
        ) from None
    if out is im:
        out = im.copy()  # detach from the file before it is closed
    return out, box


def image_info(path: str | Path) -> ImageInfo:
    """Format, displayed size, mode and frame count from the header only (no decode)."""
    fp, name = _open_source(path, None)
    with fp, warnings.catch_warnings(), _open(fp, name) as im:
        warnings.simplefilter("ignore")
        w, h = im.size
        try:
            if im.getexif().get(0x0112) in (5, 6, 7, 8):
                w, h = h, w
        except Exception:
            pass
        return ImageInfo(im.format or "?", w, h, im.mode, int(getattr(im, "n_frames", 1)))


def _special_reason(path: Path) -> str | None:
    """Why ``path`` (an entry named like an image) is not a readable image file, or None."""
    try:
        lst = path.lstat()
    except OSError as e:
        return _os_reason(e)
    link = stat.S_ISLNK(lst.st_mode)
    try:
        st = path.stat()
    except OSError:
        return "broken link (its target does not exist)" if link else "cannot read file"
    what = "link to " if link else ""
    if stat.S_ISDIR(st.st_mode):
        return f"{what}a folder, not an image file"
    if stat.S_ISFIFO(st.st_mode):
        return f"{what}a FIFO (named pipe), not an image file"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return f"{what}a device, not an image file"
    if not stat.S_ISREG(st.st_mode):
        return f"{what}not a regular file"
    return None


def iter_image_files(
    root: Path, recursive: bool = True, skipped: list[tuple[Path, str]] | None = None
) -> list[Path]:
    """Sorted image files under root by extension, skipping hidden and OS junk files.

    Entries named like images that are not regular files (FIFOs, devices, broken links) and
    links to folders (not followed: no loops, nothing outside the folder) are left out; with
    ``skipped`` given, each is appended there as ``(path, why)``, so callers can say so.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    found: list[Path] = []
    notes: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        keep = []
        for d in sorted(dirnames):
            if d.startswith(".") or d.lower() in _SKIP_NAMES:
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                notes.append((Path(dirpath, d), "link to a folder, not followed"))
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            if f.startswith(".") or f.lower() in _SKIP_NAMES:
                continue  # also AppleDouble "._x.jpg"
            p = Path(dirpath, f)
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            why = _special_reason(p)
            if why is None:
                found.append(p)
            else:
                notes.append((p, why))
        if not recursive:
            break
    if skipped is not None:
        skipped += sorted(notes)
    return sorted(found)


def content_hash(path: str | Path) -> str:
    """sha256 hex of the file's bytes, so the index can detect changed or duplicate files."""
    h = hashlib.sha256()
    why = _special_reason(Path(path))
    if why is not None:  # opening a FIFO would block; /dev/zero would never end
        raise ImageLoadError(str(path), why)
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

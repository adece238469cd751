"""Recognizing many photos at once: one recognizer per worker process.

Why not ``recognition.runner`` (the index builder's pool): that runner only describes
(descriptor and keypoints, in input order, in fixed chunks so the index does not depend on the
worker count), while tagging needs the whole recognition (search, geometric verification
against the index's keypoints, the decision) in the worker, answers in completion order, and a
worker that cannot open the index reported once as fatal. Verifying in the parent would make
the slowest step serial. What both share is the worker count (``default_workers``).

Each worker opens the index once, then per photo decodes it (``core.images.load_image``, JPEGs
at reduced size), recognizes it, and reads its EXIF GPS and capture time from the header.
Results come back in completion order as small picklable records; nothing here writes anything.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import ExifTags

from landmark_finder.core.geo import gps_from_exif
from landmark_finder.core.images import ImageLoadError, content_hash, open_header
from landmark_finder.library.scan import is_raw
from landmark_finder.recognition.runner import default_workers as default_workers


@dataclass
class PhotoResult:
    """One photo, as a worker saw it. ``landmark`` is the top candidate (even when below the
    threshold: the caller decides with its own ``--min-confidence``)."""

    path: str
    sha256: str = ""
    status: str = "error"  # "recognized" | "unknown" | "error" (the index's own threshold)
    landmark: dict | None = None  # id, name, address, latitude, longitude
    confidence: float = 0.0
    verified: bool = False
    gps: tuple[float, float] | None = None
    taken: str | None = None
    error: str | None = None
    fatal: bool = False  # the worker itself could not start (bad index): stop the run


@dataclass(frozen=True)
class DescribeConfig:
    index_dir: str
    verify: bool | None = None
    verify_top: int | None = None
    threads: int | None = None  # network threads per worker


_state: dict = {}


def _init(cfg: DescribeConfig) -> None:
    """Open the recognizer once per worker; a failure is kept and reported by every task."""
    from landmark_finder.recognition.index import Index
    from landmark_finder.recognition.recognizer import Recognizer, extractor_for

    try:
        index = Index.open(Path(cfg.index_dir))
        _state["rec"] = Recognizer(
            index, extractor_for(index, threads=cfg.threads), cfg.verify, cfg.verify_top
        )
    except Exception as e:  # reported as a fatal result, never a respawn loop
        _state["error"] = str(e) or type(e).__name__
    _state["meta"] = None


def _preview(path: Path) -> bytes | None:
    from landmark_finder.library.xmp import Metadata

    if _state.get("meta") is None:
        _state["meta"] = Metadata()
    return _state["meta"].preview(path)


def _taken(exif) -> str | None:
    """EXIF DateTimeOriginal (else DateTime) as ISO 8601, or None when absent or malformed."""
    try:
        raw = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal) or exif.get(
            ExifTags.Base.DateTime
        )
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw or "")
        return datetime.strptime(text.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except Exception:
        return None


def describe_one(path: str) -> PhotoResult:
    """Recognize one photo file in this process (after ``_init``)."""
    if "error" in _state:
        return PhotoResult(path, error=_state["error"], fatal=True)
    p = Path(path)
    try:
        sha = content_hash(p)
        source: str | bytes = path
        if is_raw(p):
            source = _preview(p) or b""
            if not source:
                return PhotoResult(path, sha, error=f"{path}: RAW file without a readable preview")
    except ImageLoadError as e:
        return PhotoResult(path, error=str(e))
    return describe_source(_state["rec"], source, path, sha)


def describe_source(rec, source: str | bytes, name: str, sha256: str = "") -> PhotoResult:
    """Recognize one photo (a path or its bytes) with ``rec`` (a ``Recognizer``), with the
    GPS position and capture time from its EXIF. Never raises for a bad photo."""
    out = PhotoResult(name, sha256)
    try:
        with open_header(source, name=name) as im:
            exif = im.getexif()
            gps = gps_from_exif(exif)
            out.gps = None if gps is None else (gps.latitude, gps.longitude)
            out.taken = _taken(exif)
    except ImageLoadError as e:
        out.error = str(e)
        return out
    except Exception as e:  # metadata quirks must not stop a 20,000-photo run
        out.error = f"{name}: {type(e).__name__}: {e}"
        return out
    r = rec.recognize(source, top_k=1, name=name)
    out.status, out.confidence, out.verified, out.error = (
        r.status,
        float(r.confidence),
        r.verified,
        r.error,
    )
    if r.candidates:
        out.landmark = r.candidates[0].landmark.to_dict()
    return out


def describe_photos(
    cfg: DescribeConfig, paths: list[str], workers: int = 1
) -> Iterator[PhotoResult]:
    """Results for ``paths`` in completion order. ``workers`` > 1 runs a process pool (each
    worker single-threaded in the network, so the pool fills the cores without
    oversubscribing them); 1 runs here. Stopping the iteration stops the workers."""
    if not paths:
        return
    if workers <= 1:
        _init(cfg)
        try:
            for p in paths:
                yield describe_one(p)
        finally:
            _state.clear()
        return
    ctx = multiprocessing.get_context("spawn")  # no inherited threads or open sessions
    cfg = DescribeConfig(cfg.index_dir, cfg.verify, cfg.verify_top, cfg.threads or 1)
    pool = ctx.Pool(min(workers, len(paths)), initializer=_init, initargs=(cfg,))
    try:
        yield from pool.imap_unordered(describe_one, paths, chunksize=1)
        pool.close()
    finally:
        pool.terminate()
        pool.join()

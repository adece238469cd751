"""One tagging run over a photo library: plan, recognize, write, record.

Order per photo: recognize (in a worker) → write the metadata → commit its database row. A run
killed at any point therefore redoes at most the photos in flight; writing is idempotent (our
previous values are replaced, never duplicated), so redoing one is harmless.
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from landmark_finder.core.geo import GeoPoint, distance_km
from landmark_finder.core.images import ImageLoadError, content_hash
from landmark_finder.core.progress import Progress, no_progress
from landmark_finder.errors import LandmarkFinderError
from landmark_finder.i18n import N_
from landmark_finder.library.db import DB_NAME, PhotoRecord, TagDB
from landmark_finder.library.describe import (
    DescribeConfig,
    PhotoResult,
    default_workers,
    describe_photos,
)
from landmark_finder.library.scan import scan_library
from landmark_finder.library.xmp import LandmarkTag, Metadata, MetadataError, place_of, sidecar_path

#: A photo's GPS tag farther than this from the recognized landmark is reported as a mismatch.
DEFAULT_MAX_KM = 5.0
SET_GPS = ("missing", "mismatch")


class TagError(LandmarkFinderError):
    """A run cannot start or go on (bad index, locked database); str() is one line."""


@dataclass
class TagOptions:
    verify: bool | None = None  # None: whenever the index can
    verify_top: int | None = None
    min_confidence: float | None = None  # None: the index's calibrated threshold
    sidecar_style: str = "darktable"
    write_into_file: bool = False
    set_gps: str | None = None  # "missing" | "mismatch" | None
    max_km: float = DEFAULT_MAX_KM
    retag: bool = False
    workers: int = 0  # 0: one per core

    def __post_init__(self) -> None:
        if self.set_gps not in (None, *SET_GPS):
            raise ValueError(f"--set-gps must be one of {', '.join(SET_GPS)}")
        if self.max_km <= 0:
            raise ValueError("--max-km must be positive")


@dataclass
class TagSummary:
    photos: int = 0  # photos found
    handled: int = 0  # described in this run
    unchanged: int = 0  # already done in an earlier run
    tagged: int = 0  # metadata written in this run
    unknown: int = 0
    errors: int = 0
    write_failures: list[str] = field(default_factory=list)
    error_lines: list[str] = field(default_factory=list)  # unreadable photos of this run
    skipped: Counter = field(default_factory=Counter)
    records: list[PhotoRecord] = field(default_factory=list)
    seconds: float = 0.0
    index_changed: bool = False  # the database was made with another index version


def default_db(paths: list[Path]) -> Path:
    first = Path(paths[0]).resolve()
    return (first if first.is_dir() else first.parent) / DB_NAME


def index_version(index_dir: Path) -> str:
    try:
        return (Path(index_dir) / "CURRENT").read_text("utf-8").strip()
    except OSError:
        raise TagError(
            f"{index_dir}: not a landmark-finder index (no CURRENT file); "
            "build one with `landmark-finder index build`"
        ) from None


def _target(path: Path, opts: TagOptions) -> Path:
    return path if opts.write_into_file else sidecar_path(path, opts.sidecar_style)


def _threshold(index_dir: Path, opts: TagOptions) -> float:
    if opts.min_confidence is not None:
        return opts.min_confidence
    from landmark_finder.recognition.index import Index

    return float(Index.open(index_dir).calibrator.threshold)


def record_for(
    res: PhotoResult, size: int, mtime_ns: int, threshold: float
) -> tuple[PhotoRecord, str]:
    """The database row for a worker's result, and the landmark's address (for its place)."""
    lm = res.landmark or {}
    ok = res.error is None and bool(lm) and res.confidence >= threshold
    rec = PhotoRecord(
        res.path,
        size,
        mtime_ns,
        res.sha256,
        "error" if res.error else ("recognized" if ok else "unknown"),
        lm.get("id") if ok else None,
        lm.get("name") if ok else None,
        lm.get("latitude") if ok else None,
        lm.get("longitude") if ok else None,
        round(res.confidence, 4),
        res.verified,
        *(res.gps or (None, None)),
        res.taken,
        None,
        res.error,
        tagged_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    if ok and res.gps and rec.latitude is not None and rec.longitude is not None:
        rec.distance_km = round(
            distance_km(GeoPoint(*res.gps), GeoPoint(rec.latitude, rec.longitude)), 3
        )
    return rec, str(lm.get("address") or "")


@functools.lru_cache(maxsize=4096)
def _gazetteer_place(lat: float, lon: float) -> tuple[str, str] | None:
    from landmark_finder.core.places import places_of

    (place,) = places_of([GeoPoint(lat, lon)])
    return None if place is None else (place.city, place.country)


def _place(rec: PhotoRecord, address: str) -> tuple[str, str]:
    """(city, country) of the landmark: from its position by the offline gazetteer, else
    read from its catalog address."""
    if rec.latitude is not None and rec.longitude is not None:
        try:
            found = _gazetteer_place(rec.latitude, rec.longitude)
        except Exception:  # the gazetteer is optional help, never a reason to fail a photo
            found = None
        if found and found[1]:
            return found
    return place_of(address)


def _wants_gps(rec: PhotoRecord, opts: TagOptions) -> bool:
    if opts.set_gps is None or rec.latitude is None:
        return False
    if rec.gps_latitude is None:
        return True
    return opts.set_gps == "mismatch" and (rec.distance_km or 0) > opts.max_km


def _write(
    meta: Metadata, rec: PhotoRecord, address: str, old: PhotoRecord | None, opts: TagOptions
) -> None:
    """Write (or withdraw) our metadata for one photo and note where it went."""
    path = Path(rec.path)
    target = _target(path, opts)
    sidecar = not opts.write_into_file
    if old is not None and old.written and old.written != ("file" if not sidecar else str(target)):
        prev = path if old.written == "file" else Path(old.written)
        if prev.exists():
            meta.clear(prev, sidecar=old.written != "file")
    if rec.status == "recognized":
        city, country = _place(rec, address)
        tag = LandmarkTag(
            rec.landmark_id or "",
            rec.landmark_name or "",
            rec.confidence,
            country,
            city,
            rec.latitude,
            rec.longitude,
        )
        meta.write(target, tag, set_gps=_wants_gps(rec, opts), sidecar=sidecar)
        rec.written = "file" if not sidecar else str(target)
    else:
        if target.exists() and (old is not None and old.written):
            meta.clear(target, sidecar=sidecar)
        rec.written = ""
    if not sidecar and rec.written:  # the file changed: key the record on its new state
        st = path.stat()
        rec.size, rec.mtime_ns = st.st_size, st.st_mtime_ns
        rec.sha256 = content_hash(path)


def tag_library(
    index_dir: Path,
    paths: list[Path],
    db_path: Path | None = None,
    opts: TagOptions | None = None,
    progress: Progress = no_progress,
) -> TagSummary:
    """Tag every new or changed photo under ``paths``; see the module docstring."""
    opts = opts or TagOptions()
    t0 = time.perf_counter()
    version = index_version(index_dir)
    threshold = _threshold(index_dir, opts)
    db_path = Path(db_path) if db_path else default_db(paths)
    ignore = {db_path.resolve()} | {
        Path(f"{db_path.resolve()}{s}") for s in ("-wal", "-shm", ".lock", "-journal")
    }
    scan = scan_library(paths, ignore)
    summary = TagSummary(photos=len(scan.photos), skipped=scan.skipped)
    with TagDB(db_path) as db, Metadata() as meta:
        before = db.get_meta("index_version")
        summary.index_changed = before is not None and before != version
        db.set_meta("index_version", version)
        todo, stats, targets = [], {}, {}
        for p in scan.photos:
            key = str(p)
            st = p.stat()
            stats[key] = (st.st_size, st.st_mtime_ns)
            old = db.get(key)
            if not opts.retag and old is not None and _unchanged(old, p, st, db):
                summary.unchanged += 1
                continue
            target = _target(p, opts)
            if not opts.write_into_file and target in targets:
                db.put(_shared_sidecar(key, st, target, targets[target]))
                summary.errors += 1
                continue
            targets[target] = p
            todo.append(key)
        cfg = DescribeConfig(str(index_dir), opts.verify, opts.verify_top)
        workers = opts.workers or default_workers()
        progress(0, len(todo), N_("tagging photos"))
        for done, res in enumerate(describe_photos(cfg, todo, workers), 1):
            if res.fatal:
                raise TagError(res.error or "the recognizer could not start")
            rec, address = record_for(res, *stats[res.path], threshold)
            old = db.get(res.path)
            try:
                _write(meta, rec, address, old, opts)
            except (MetadataError, OSError) as e:
                summary.write_failures.append(f"{res.path}: {e}")
                progress(done, len(todo), N_("tagging photos"))
                continue  # no row: the next run tries this photo again
            db.put(rec)
            summary.handled += 1
            summary.tagged += bool(rec.written)
            summary.unknown += rec.status == "unknown"
            if rec.status == "error":
                summary.errors += 1
                summary.error_lines.append(rec.error or rec.path)
            progress(done, len(todo), N_("tagging photos"))
        summary.records = [r for p in scan.photos if (r := db.get(str(p))) is not None]
    summary.seconds = time.perf_counter() - t0
    return summary


def _unchanged(old: PhotoRecord, path: Path, st: os.stat_result, db: TagDB) -> bool:
    """Same size and mtime, or (touched) same bytes: nothing to do (the row is refreshed)."""
    if (old.size, old.mtime_ns) == (st.st_size, st.st_mtime_ns):
        return True
    if old.size != st.st_size:
        return False
    try:
        same = content_hash(path) == old.sha256
    except ImageLoadError:
        return False
    if same:
        old.mtime_ns = st.st_mtime_ns
        db.put(old)
    return same


def _shared_sidecar(key: str, st: os.stat_result, target: Path, other: Path) -> PhotoRecord:
    return PhotoRecord(
        key,
        st.st_size,
        st.st_mtime_ns,
        "",
        "error",
        error=f"{key}: its sidecar {target.name} would be shared with {other.name}; "
        "use --sidecar-style darktable",
    )


def clear_library(
    paths: list[Path], opts: TagOptions | None = None, db_path: Path | None = None
) -> tuple[int, int]:
    """Remove what ``tag`` wrote from the photos under ``paths`` (their sidecars of either
    style, and their own XMP) and forget them in the database. Returns (photos, cleared)."""
    db_path = Path(db_path) if db_path else default_db(paths)
    scan = scan_library(paths, {db_path.resolve()})
    cleared = 0
    with TagDB(db_path) as db, Metadata() as meta:
        for p in scan.photos:
            hit = False
            for style in ("darktable", "lightroom"):
                sc = sidecar_path(p, style)
                if sc.exists():
                    hit |= meta.clear(sc, sidecar=True)
            try:
                hit |= meta.clear(p, sidecar=False)
            except MetadataError:
                pass  # a file exiftool cannot read has nothing of ours in it
            cleared += hit
            db.delete(str(p))
    return len(scan.photos), cleared

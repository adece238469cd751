"""On-disk index format 2: immutable segments, one atomically swapped manifest, one writer.

Layout::

    INDEX/
      CURRENT                    name of the live manifest (replaced atomically)
      manifest-<generation>.json settings, decision model, the segments and their tombstones,
                                 and the model files below
      segments/seg-<id>/         immutable once written: records.csv, descriptors.npy (float16),
                                 local_xy.npy, local_desc.npy, local_offsets.npy,
                                 local_codebook.npy (compact keypoints), segment.json
      model/                     content-addressed files shared by manifests:
                                 catalog-<hash>.csv, whitening-<hash>.npz,
                                 distractors-<hash>.npy, ann-<hash>.faiss
      .writer.lock               held by the one process writing (``filelock``)

Why: adding photos writes one segment (its own photos only) and a small manifest, so the cost
of ``index add`` follows the photos added, not the index; removing writes tombstones (row
numbers in the manifest); ``index compact`` rewrites the live rows as one segment. A reader
reads CURRENT, then the manifest it names, then the files that manifest names: every one of
them is immutable, so a reader never sees half a write. Clean-up (by the writer, under the lock)
keeps the current manifest and the one before it (a reader may be opening it right now) and
everything they reference; readers retry once from CURRENT if a file vanished under them.

Writers: ``with WriterLock(root): ... write_segment(...) ... commit(...)``. Segments can also
be written by other processes (a cluster) before the lock is taken: ``write_segment`` builds
in a ``.tmp-<pid>-*`` folder and renames it complete; unreferenced segments are removed only
when their writer is dead (same host) or they are older than :data:`ORPHAN_GRACE_S`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landmark_finder.core.atomic import fsync_dir, write_bytes_atomic, write_text_atomic
from landmark_finder.errors import IndexVersionError, LandmarkIndexError
from landmark_finder.recognition.writer_lock import WriterLock

FORMAT_VERSION = 2
CURRENT = "CURRENT"
#: Unreferenced segments of a writer on another host (or of unknown origin) are kept this long.
ORPHAN_GRACE_S = 3600.0
#: Descriptors are unit vectors with values well inside float16's range; float16 halves the
#: bytes per photo and moved no benchmark figure (see README, "Index at scale").
DESCRIPTOR_DTYPE = np.float16
LOCAL_FILES = ("local_xy.npy", "local_desc.npy", "local_offsets.npy")
CODEBOOK_FILE = "local_codebook.npy"


@dataclass
class PhotoRecord:
    landmark_id: str
    path: str
    sha256: str


@dataclass
class SegmentRef:
    """One immutable segment and the rows of it that are deleted (tombstones)."""

    name: str
    rows: int
    deleted: list[int] = field(default_factory=list)

    @property
    def live(self) -> int:
        return self.rows - len(self.deleted)

    def live_rows(self) -> np.ndarray:
        keep = np.ones(self.rows, bool)
        keep[np.asarray(self.deleted, np.int64)] = False
        return np.flatnonzero(keep)

    def to_dict(self) -> dict:
        return {"name": self.name, "rows": self.rows, "deleted": sorted(self.deleted)}

    @classmethod
    def from_dict(cls, d: dict) -> SegmentRef:
        return cls(str(d["name"]), int(d["rows"]), [int(i) for i in d.get("deleted", [])])


@dataclass
class Manifest:
    """One version of the index: settings and decision model (``meta``), segments, files."""

    generation: int
    meta: dict
    segments: list[SegmentRef]
    files: dict[str, str | None]  # catalog / whitening / distractors / ann -> path under root

    @property
    def name(self) -> str:
        return f"manifest-{self.generation:08d}.json"

    def to_json(self) -> str:
        d = {
            "format_version": FORMAT_VERSION,
            "generation": self.generation,
            **self.meta,
            "files": self.files,
            "segments": [s.to_dict() for s in self.segments],
        }
        return json.dumps(d, indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        d = json.loads(text)
        gen = int(d.pop("generation"))
        files = dict(d.pop("files"))
        segs = [SegmentRef.from_dict(s) for s in d.pop("segments")]
        return cls(gen, d, segs, files)


# --- reading -----------------------------------------------------------------------------------


def current_name(root: Path) -> str:
    """What CURRENT names (a manifest in format 2, a version folder in format 1)."""
    try:
        return (Path(root) / CURRENT).read_text("utf-8").strip()
    except FileNotFoundError:
        raise LandmarkIndexError(
            f"{root}: not a landmark-finder index (no CURRENT file); "
            "build one with `landmark-finder index build`"
        ) from None


def is_format1(root: Path) -> bool:
    return current_name(root).startswith("v-")


def read_manifest(root: Path) -> Manifest:
    root = Path(root)
    name = current_name(root)
    if name.startswith("v-"):
        raise LandmarkIndexError(
            f"{root}: index format 1 (one folder per version); convert it with "
            f"`landmark-finder index upgrade {root}` before changing it"
        )
    try:
        text = (root / name).read_text("utf-8")
        fv = json.loads(text).get("format_version")
    except FileNotFoundError:
        raise  # replaced under a reader: Index.open reads CURRENT again
    except (OSError, ValueError, AttributeError) as e:
        raise LandmarkIndexError(f"{root}: index manifest unreadable ({e})") from None
    if not isinstance(fv, int) or fv > FORMAT_VERSION:
        raise IndexVersionError(
            f"{root}: index format {fv} is newer than this landmark-finder supports "
            f"({FORMAT_VERSION}); upgrade landmark-finder or rebuild the index"
        )
    try:
        return Manifest.from_json(text)
    except (KeyError, TypeError, ValueError) as e:
        raise LandmarkIndexError(
            f"{root}: index manifest unreadable ({e}); rebuild the index"
        ) from None


def read_records(folder: Path) -> list[PhotoRecord]:
    with open(folder / "records.csv", newline="", encoding="utf-8") as f:
        return [PhotoRecord(r["landmark_id"], r["path"], r["sha256"]) for r in csv.DictReader(f)]


def load_segment(root: Path, ref: SegmentRef, with_local: bool):
    """Live records, descriptors (memory-mapped float16) and local arrays of one segment:
    ``(xy, desc, offsets, codebook)``, the codebook None when the descriptors are raw."""
    folder = Path(root) / "segments" / ref.name
    records = read_records(folder)
    desc = np.load(folder / "descriptors.npy", mmap_mode="r", allow_pickle=False)
    if len(records) != ref.rows or len(desc) != ref.rows:
        raise ValueError(f"segment {ref.name}: {len(records)} records, {len(desc)} descriptors")
    local = None
    if with_local:
        local = tuple(np.load(folder / n, mmap_mode="r", allow_pickle=False) for n in LOCAL_FILES)
        cb = folder / CODEBOOK_FILE
        local += (np.load(cb, allow_pickle=False) if cb.exists() else None,)
    live = ref.live_rows()
    return [records[i] for i in live], desc, local, live


# --- writing -----------------------------------------------------------------------------------


def _tmp_dir(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    d = parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    d.mkdir()
    return d


def _fsync_tree(d: Path) -> None:
    for p in d.iterdir():
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(d)


def write_segment(
    root: Path,
    records: Sequence[PhotoRecord],
    descriptors: np.ndarray,
    local: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    codebook: np.ndarray | None = None,
) -> SegmentRef:
    """Write one immutable segment from photo records, their descriptors (N, D) and, for
    verification, their keypoints as ``(xy, desc, offsets)`` arrays (see ``LocalStore``), with
    the ``codebook`` centroids their descriptors are codes of (compact keypoints).

    Safe without the writer lock (it only adds a new folder); it becomes part of the index
    when a manifest that lists it is committed.
    """
    root = Path(root)
    n = len(records)
    if len(descriptors) != n or (local is not None and len(local[2]) != n + 1):
        raise ValueError(f"segment of {n} records with {len(descriptors)} descriptors")
    tmp = _tmp_dir(root / "segments")
    try:
        np.save(tmp / "descriptors.npy", np.asarray(descriptors, DESCRIPTOR_DTYPE))
        if local is not None:
            for name, arr in zip(LOCAL_FILES, local, strict=True):
                np.save(tmp / name, np.ascontiguousarray(arr))
            if codebook is not None:
                np.save(tmp / CODEBOOK_FILE, np.ascontiguousarray(codebook, np.float32))
        with open(tmp / "records.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["row", "landmark_id", "path", "sha256"])
            for i, r in enumerate(records):
                w.writerow([i, r.landmark_id, r.path, r.sha256])
        info = {"rows": n, "pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
        (tmp / "segment.json").write_text(json.dumps(info), "utf-8")
        _fsync_tree(tmp)
        name = f"seg-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
        os.replace(tmp, tmp.parent / name)
        fsync_dir(tmp.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SegmentRef(name, n)


def put_file(root: Path, kind: str, suffix: str, data: bytes) -> str:
    """Store a model file by content (``model/<kind>-<hash><suffix>``); unchanged parts of the
    model are not written again. Returns its path relative to ``root``."""
    rel = f"model/{kind}-{hashlib.sha256(data).hexdigest()[:20]}{suffix}"
    if not (Path(root) / rel).exists():
        write_bytes_atomic(Path(root) / rel, data)
    return rel


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr))
    return buf.getvalue()


def commit(lock: WriterLock, manifest: Manifest) -> None:
    """Publish ``manifest`` (its segments and files already written) and clean up."""
    if not lock.held:
        raise RuntimeError("commit without the writer lock")
    root = lock.root
    write_text_atomic(root / manifest.name, manifest.to_json())
    write_text_atomic(root / CURRENT, manifest.name + "\n")
    cleanup(root)


def next_generation(root: Path) -> int:
    """One more than any manifest on disk (a failed write may have left a newer one)."""
    gens = [int(p.name[9:17]) for p in Path(root).glob("manifest-*.json") if p.name[9:17].isdigit()]
    return max(gens, default=0) + 1


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tmp_is_stale(p: Path) -> bool:
    parts = p.name.split("-")  # .tmp-<pid>-<rand> (folders) or .<name>.<rand>.tmp (files)
    if p.name.startswith(".tmp-") and len(parts) >= 3 and parts[1].isdigit():
        return not _pid_alive(int(parts[1]))
    return time.time() - p.stat().st_mtime > ORPHAN_GRACE_S


def _orphan_is_stale(seg: Path) -> bool:
    try:
        info = json.loads((seg / "segment.json").read_text("utf-8"))
        if info.get("host") == socket.gethostname() and not _pid_alive(int(info["pid"])):
            return True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return time.time() - seg.stat().st_mtime > ORPHAN_GRACE_S


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def cleanup(root: Path) -> None:
    """Remove what no live manifest needs; call only while holding the writer lock.

    Keeps the current manifest, the one before it, and any newer one, with their segments
    and files; removes format-1 version folders, unreferenced segments of dead writers and
    stale ``.tmp`` files left by killed processes.
    """
    root = Path(root)
    try:
        cur = read_manifest(root)
    except LandmarkIndexError:
        return
    manifests = sorted(root.glob("manifest-*.json"))
    keep: list[Path] = []
    older: list[Path] = []
    for p in manifests:
        gen = int(p.name[9:17]) if p.name[9:17].isdigit() else -1
        (keep if gen >= cur.generation else older).append(p)
    if older:  # the newest older one stays: a reader may be opening it right now
        keep.append(older[-1])
        for p in older[:-1]:
            p.unlink(missing_ok=True)
    segs, files = set(), set()
    for p in keep:
        try:
            m = Manifest.from_json(p.read_text("utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        segs |= {s.name for s in m.segments}
        files |= {f for f in m.files.values() if f}
    for p in (root / "segments").glob("*"):
        if p.name.startswith(".tmp-"):
            if _tmp_is_stale(p):
                _remove(p)
        elif p.name not in segs and _orphan_is_stale(p):
            _remove(p)
    for p in (root / "model").glob("*"):
        if p.name.endswith(".tmp"):
            if _tmp_is_stale(p):
                _remove(p)
        elif f"model/{p.name}" not in files:
            _remove(p)
    for p in root.glob("v-*"):  # format-1 versions (after an upgrade or a rebuild)
        _remove(p)
    for p in root.glob(".*.tmp"):
        if _tmp_is_stale(p):
            _remove(p)


def settings_from_meta(meta: dict) -> dict:
    """The index settings a manifest (format 2) or ``meta.json`` (format 1) records, as
    ``Index`` keyword arguments: one reading of them for both formats."""
    from landmark_finder.core.decision import Calibrator
    from landmark_finder.core.descriptors import Preprocessing

    return dict(
        backbone=meta["backbone"],
        weights_hash=meta["weights_hash"],
        preprocessing=Preprocessing.from_dict(meta["preprocessing"]),
        calibrator=Calibrator.from_dict(meta["calibrator"]),
        approximate=bool(meta.get("approximate")),
        whiten=bool(meta.get("whiten", True)),
        calibration_report=meta.get("calibration_report", {}),
        created=meta.get("created", ""),
    )

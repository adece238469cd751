"""Finding what does not belong in a photo collection, and moving it aside — never deleting it.

Offenders: hidden/OS files (``.DS_Store``, ``._*``, ``Thumbs.db``), files that are not images
(by name, or by content: a text file called ``.jpg``), broken or truncated images, tiny images,
and every copy of a duplicate group except the one kept (largest resolution, then biggest
file; see ``duplicates.py``) — including copies filed under another landmark or in both the
train and test folders of a raw data set.

``quarantine`` moves offenders (with their ``collect`` sidecars) into a folder outside the
collection, mirroring their relative paths, and appends one row per file to the quarantine's
``manifest.csv``. Nothing is deleted, and because the kept copy of each group stays, running
the cleaner again finds nothing more.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from landmark_finder.core.progress import Progress, no_progress
from landmark_finder.dataset.duplicates import DuplicateGroup, find_duplicates
from landmark_finder.dataset.manifest import append_csv_atomic
from landmark_finder.dataset.scan import Entry, Photo, ScanOptions, read_collection
from landmark_finder.i18n import N_

MANIFEST_NAME = "manifest.csv"
MANIFEST_FIELDS = (
    "original_path",
    "quarantine_path",
    "reason",
    "detail",
    "group",
    "duplicate_of",
    "moved_at",
)
#: Reasons, in the order the report lists them.
REASONS = ("hidden", "not-an-image", "broken", "tiny", "duplicate", "near-duplicate")


@dataclass(frozen=True)
class Offender:
    path: Path
    rel: str
    reason: str  # one of REASONS
    detail: str = ""
    group: int | None = None  # duplicate group id
    duplicate_of: str = ""  # rel path of the kept copy

    @property
    def cross_landmark(self) -> bool:
        return "another landmark" in self.detail


@dataclass
class CleanReport:
    root: Path
    offenders: list[Offender]
    n_files: int  # files looked at
    groups: list[DuplicateGroup] = field(default_factory=list)

    def by_reason(self) -> dict[str, list[Offender]]:
        return {r: [o for o in self.offenders if o.reason == r] for r in REASONS}


@dataclass(frozen=True)
class Moved:
    offender: Offender
    destination: Path


def default_quarantine(root: Path) -> Path:
    """``<DIR>/../<DIR-name>.quarantine``: beside the collection, never inside it."""
    root = Path(root).resolve()
    return root.parent / f"{root.name}.quarantine"


def _file_offender(e: Entry) -> Offender | None:
    if e.kind == "junk":
        return Offender(e.path, e.rel, "hidden", "hidden or operating-system file")
    if e.kind == "other":
        what = "not an image file" if e.path.is_file() else "not a regular file (broken link?)"
        return Offender(e.path, e.rel, "not-an-image", what)
    return None


def _photo_offender(p: Photo) -> Offender | None:
    if p.status == "broken":
        reason = "not-an-image" if p.reason.startswith("not an image") else "broken"
        return Offender(p.path, p.entry.rel, reason, p.reason)
    if p.status == "tiny":
        return Offender(p.path, p.entry.rel, "tiny", p.reason)
    return None


def find_offenders(root: Path, options: ScanOptions = ScanOptions()) -> CleanReport:
    """Everything ``clean`` would move, with the reason; reads every photo, changes nothing."""
    root, entries, photos = read_collection(root, options)
    progress = options.progress
    offenders = [o for e in entries if (o := _file_offender(e))]
    offenders += [o for p in photos if (o := _photo_offender(p))]
    groups: list[DuplicateGroup] = []
    if options.duplicates:
        groups = find_duplicates(
            [p for p in photos if p.status == "ok" and p.entry.kind == "image"], progress
        )
        for g in groups:
            keep = g.keep
            for p in g.others:
                where = []
                if p.landmark != keep.landmark:
                    where.append(f"under another landmark ({keep.landmark})")
                if p.entry.folder_split != keep.entry.folder_split:
                    where.append(f"in another split folder ({keep.entry.folder_split or '-'})")
                detail = "; ".join([g.evidence.get(p.entry.rel, "")] + where).strip("; ")
                reason = "duplicate" if p.sha256 == keep.sha256 else "near-duplicate"
                offenders.append(
                    Offender(p.path, p.entry.rel, reason, detail, g.id, keep.entry.rel)
                )
    offenders.sort(key=lambda o: (REASONS.index(o.reason), o.rel))
    return CleanReport(root, offenders, len(entries), groups)


def _free_destination(dest: Path) -> Path:
    """``dest``, or ``name~2.ext`` etc. if an earlier run already quarantined that name."""
    if not dest.exists() and not dest.is_symlink():
        return dest
    for k in range(2, 1_000_000):
        cand = dest.with_name(f"{dest.stem}~{k}{dest.suffix}")
        if not cand.exists() and not cand.is_symlink():
            return cand
    raise OSError(f"{dest}: no free name in the quarantine")


def _move(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dest)  # same file system: atomic, and keeps symlinks as symlinks
    except OSError:
        shutil.move(str(src), str(dest))  # another file system: copy, then remove the source


def quarantine(
    report: CleanReport, dest: Path | None = None, progress: Progress = no_progress
) -> list[Moved]:
    """Move every offender (and its ``.json`` sidecar) to ``dest``; record each in its manifest."""
    root = report.root.resolve()
    dest = Path(dest).resolve() if dest else default_quarantine(root)
    if dest == root or root in dest.parents:
        raise ValueError(f"{dest}: the quarantine must be outside the collection {root}")
    moved: list[Moved] = []
    rows = []
    now = datetime.now(UTC).isoformat(timespec="seconds")
    progress(0, len(report.offenders), N_("moving to quarantine"))
    for n, o in enumerate(report.offenders, 1):
        if not (o.path.exists() or o.path.is_symlink()):
            continue  # moved or removed since the scan
        target = _free_destination(dest / o.rel)
        _move(o.path, target)
        moved.append(Moved(o, target))
        rows.append(
            {
                "original_path": str(o.path),
                "quarantine_path": str(target),
                "reason": o.reason,
                "detail": o.detail,
                "group": o.group,
                "duplicate_of": o.duplicate_of,
                "moved_at": now,
            }
        )
        sidecar = o.path.with_name(o.path.name + ".json")
        if sidecar.is_file():
            side_target = target.with_name(target.name + ".json")
            _move(sidecar, side_target)
            rows.append(
                {
                    "original_path": str(sidecar),
                    "quarantine_path": str(side_target),
                    "reason": "sidecar",
                    "detail": f"metadata of {o.rel}",
                    "group": o.group,
                    "duplicate_of": "",
                    "moved_at": now,
                }
            )
        progress(n, len(report.offenders), N_("moving to quarantine"))
    if rows:
        append_csv_atomic(dest / MANIFEST_NAME, MANIFEST_FIELDS, rows)
    return moved

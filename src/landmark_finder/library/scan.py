"""Which files of a photo library are photos, and which are skipped (and why).

The library walk is deliberately chattier than ``core.images.iter_image_files``: a person
tagging 20,000 photos wants to know how many were left out and why (hidden, not an image, a
RAW file), not just the photos. Decoding is still only done by ``core.images.load_image``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from landmark_finder.core.images import IMAGE_EXTENSIONS

#: Camera RAW formats: described through their embedded JPEG preview (read by exiftool), or
#: skipped when they have none.
RAW_EXTENSIONS = frozenset(
    {
        ".arw", ".cr2", ".cr3", ".crw", ".dng", ".erf", ".kdc", ".mef", ".mos", ".mrw",
        ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw",
        ".x3f", ".3fr", ".iiq",
    }
)  # fmt: skip
#: Files written beside photos by photo tools (and by us): never photos, not worth counting.
COMPANION_EXTENSIONS = frozenset({".xmp", ".aae", ".thm", ".pp3", ".dop", ".on1"})
_JUNK_DIRS = frozenset({"__macosx", "@eadir", ".thumbnails"})


@dataclass
class LibraryScan:
    """Photos (and RAW files) found, in a stable order, and the count of skipped files by
    reason: ``hidden``, ``not an image``."""

    photos: list[Path] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    def add(self, other: LibraryScan) -> None:
        self.photos += other.photos
        self.skipped.update(other.skipped)


def is_raw(path: Path) -> bool:
    return path.suffix.lower() in RAW_EXTENSIONS


def scan_library(
    paths: list[Path], ignore: set[Path] | frozenset[Path] = frozenset()
) -> LibraryScan:
    """Photos under ``paths`` (folders are walked recursively; a file is taken as given).

    Hidden files and folders (``.name``) are skipped and counted; so are files that are not
    photos by extension. Companion files (sidecars) and ``ignore`` (e.g. our own database)
    are left out silently. Raises ``FileNotFoundError`` for a path that does not exist.
    """
    found = LibraryScan()
    seen: set[Path] = set()
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such file or folder")
        files = [root] if root.is_file() else _walk(root, found)
        for f in files:
            p = f.resolve()
            if p in seen or p in ignore:
                continue
            seen.add(p)
            ext = p.suffix.lower()
            if ext in COMPANION_EXTENSIONS or p.name.endswith(("_exiftool_tmp", "-journal")):
                continue
            if ext in IMAGE_EXTENSIONS or ext in RAW_EXTENSIONS:
                found.photos.append(p)
            elif f.name.startswith("."):
                found.skipped["hidden"] += 1
            else:
                found.skipped["not an image"] += 1
    found.photos.sort()
    return found


def _walk(root: Path, found: LibraryScan) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        keep = []
        for d in dirnames:
            if d.startswith("."):
                found.skipped["hidden"] += sum(len(fs) for _, _, fs in os.walk(Path(dirpath, d)))
            elif d.lower() not in _JUNK_DIRS:
                keep.append(d)
        dirnames[:] = sorted(keep)
        for name in filenames:
            if name.startswith("."):
                if not name.startswith((".landmark-finder",)):
                    found.skipped["hidden"] += 1
                continue
            p = Path(dirpath, name)
            if p.is_file():
                out.append(p)
    return out

"""Reading a photo collection: which file belongs to which landmark, and what each file is.

A collection is a folder with one sub-folder per landmark (``DIR/<landmark>/...``), or the raw
layout many downloaded data sets come in, with split folders on top
(``DIR/train/<landmark>/...``, ``DIR/test/<landmark>/...``). Both are understood: the landmark
is the first folder under ``DIR`` that is not a split name.

Unlike :func:`landmark_finder.core.images.iter_image_files` (which quietly skips junk so indexing
never sees it), :func:`scan_tree` lists *every* file, because ``clean`` must report the junk.
Photos are still found with ``iter_image_files`` and read only through ``load_image`` /
``image_info``, so every command sees a photo exactly as recognition would.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landmark_finder.core.images import (
    ImageLoadError,
    content_hash,
    image_info,
    iter_image_files,
    load_image,
)
from landmark_finder.core.naming import AUG_MARKER, augmented_source_stem, is_augmented  # noqa: F401  (re-exported)
from landmark_finder.core.progress import Progress, no_progress
from landmark_finder.dataset.hashing import perceptual_codes
from landmark_finder.i18n import N_

#: Top-level folder names that mean "a split of the data", not "a landmark" (also the
#: gallery/queries layout of retrieval benchmarks).
#: In the order charts show them.
SPLIT_ORDER = (
    "train",
    "training",
    "gallery",
    "val",
    "valid",
    "validation",
    "dev",
    "test",
    "testing",
    "queries",
    "query",
)
SPLIT_FOLDERS = frozenset(SPLIT_ORDER)
#: Files operating systems leave behind; never photos, and they break naive training scripts.
JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", ".directory"})
JUNK_DIRS = frozenset({"__macosx", ".ipynb_checkpoints"})
#: Photos smaller than this on their short side are reported as tiny (thumbnails, icons).
DEFAULT_MIN_SIDE = 64
#: Photos are decoded at this long side for hashing: plenty for perceptual hashes and fast.
HASH_SIDE = 256


@dataclass(frozen=True)
class Entry:
    """One file under the collection root."""

    path: Path
    rel: str  # path relative to the root, with forward slashes
    landmark: str | None  # None for files directly under the root (or a split folder)
    folder_split: str | None  # "train"/"test"/... when the raw layout has split folders
    kind: str  # "image" | "junk" | "other" (not an image file) | "sidecar" | "loose"

    @property
    def source_stem(self) -> str | None:
        """The stem of the photo this one was augmented from, or None for an original."""
        return augmented_source_stem(self.path)

    @property
    def family(self) -> tuple[str, str]:
        """(folder, stem of the original): a photo and all its augmented variants share it."""
        return (str(self.path.parent), self.source_stem or self.path.stem)


def landmark_of(rel_parts: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(landmark, split folder) for a path relative to the collection root."""
    if len(rel_parts) >= 3 and rel_parts[0].lower() in SPLIT_FOLDERS:
        return rel_parts[1], rel_parts[0]
    if len(rel_parts) >= 2 and rel_parts[0].lower() not in SPLIT_FOLDERS:
        return rel_parts[0], None
    return None, None


def is_junk_name(name: str) -> bool:
    """Hidden files (``.DS_Store``, AppleDouble ``._x.jpg``) and OS thumbnail caches."""
    return name.startswith(".") or name.lower() in JUNK_NAMES


def scan_tree(root: Path) -> list[Entry]:
    """Every file under ``root``, sorted, each classified; hidden folders count as junk."""
    root = Path(os.path.abspath(root))  # absolute, but symlinks left as they are
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    images = set(iter_image_files(root))
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        files += [Path(dirpath, f) for f in filenames]
    names = {p for p in files}
    out: list[Entry] = []
    for p in sorted(files):
        rel_parts = p.relative_to(root).parts
        landmark, split = landmark_of(rel_parts)
        in_junk_dir = any(is_junk_name(d) or d.lower() in JUNK_DIRS for d in rel_parts[:-1])
        if in_junk_dir or is_junk_name(p.name):
            kind = "junk"
        elif p in images:
            kind = "image" if landmark else "loose"
        elif p.suffix.lower() == ".json" and p.with_suffix("") in names:
            kind = "sidecar"  # metadata written by `dataset collect` next to its photo
        elif landmark is None:
            continue  # files at the top (catalog.csv, README, manifests) are not ours to judge
        else:
            kind = "other"  # not an image by name or not a regular file (broken link, FIFO)
        out.append(Entry(p, "/".join(rel_parts), landmark, split, kind))
    return out


@dataclass
class Photo:
    """What reading one image file found: its header facts, content hash and perceptual codes."""

    entry: Entry
    status: str  # "ok" | "broken" | "tiny"
    reason: str = ""
    format: str = ""
    width: int = 0
    height: int = 0
    size_bytes: int = 0
    sha256: str = ""
    codes: np.ndarray | None = None  # (n_crops, 16) uint8 perceptual codes; see hashing.py

    @property
    def path(self) -> Path:
        return self.entry.path

    @property
    def landmark(self) -> str:
        return self.entry.landmark or ""

    @property
    def pixels(self) -> int:
        return self.width * self.height


def examine(entry: Entry, min_side: int = DEFAULT_MIN_SIDE) -> Photo:
    """Read one image fully (a truncated file fails here) and hash it; never raises."""
    try:
        size = entry.path.stat().st_size
        info = image_info(entry.path)
        img = load_image(entry.path, max_side=HASH_SIDE)  # full decode: truncation shows up here
        sha = content_hash(entry.path)
    except ImageLoadError as e:
        return Photo(entry, "broken", e.reason)
    except OSError as e:
        return Photo(entry, "broken", f"cannot read file ({e.strerror or e})")
    photo = Photo(
        entry, "ok", "", info.format, info.width, info.height, size, sha, perceptual_codes(img)
    )
    if min(info.width, info.height) < min_side:
        photo.status, photo.reason = (
            "tiny",
            f"{info.width}x{info.height} px, under {min_side} px on the short side",
        )
    return photo


def examine_all(
    entries: list[Entry],
    min_side: int = DEFAULT_MIN_SIDE,
    progress: Progress = no_progress,
    workers: int | None = None,
) -> list[Photo]:
    """:func:`examine` every image entry, in order, on a few threads (decoding releases the GIL)."""
    todo = [e for e in entries if e.kind in ("image", "loose")]
    workers = workers or min(4, os.cpu_count() or 1)
    out: list[Photo] = []
    progress(0, len(todo), N_("reading photos"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, photo in enumerate(pool.map(lambda e: examine(e, min_side), todo), 1):
            out.append(photo)
            progress(i, len(todo), N_("reading photos"))
    return out


@dataclass(frozen=True)
class ScanOptions:
    """How ``stats`` and ``clean`` read a collection: one record, so the two commands cannot
    drift apart in what they accept."""

    min_side: int = DEFAULT_MIN_SIDE  # photos smaller than this on their short side are "tiny"
    duplicates: bool = True  # also search exact and near-duplicates (the slow part)
    progress: Progress = no_progress


def read_collection(root: Path, options: ScanOptions) -> tuple[Path, list[Entry], list[Photo]]:
    """``root`` made absolute, then :func:`read_tree` with ``options``."""
    root = Path(os.path.abspath(root))
    return (root, *read_tree(root, options.min_side, options.progress))


def read_tree(
    root: Path, min_side: int = DEFAULT_MIN_SIDE, progress: Progress = no_progress
) -> tuple[list[Entry], list[Photo]]:
    """Every file under ``root`` (:func:`scan_tree`) and every photo among them read
    (:func:`examine_all`): the first pass of stats, clean and split."""
    entries = scan_tree(root)
    return entries, examine_all(entries, min_side, progress)

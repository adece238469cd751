"""Index upkeep that adds no photos: merge segments, refit the decision model, convert format 1.

Each holds the index's writer lock (see :mod:`~.store`) like every other change, and publishes
one new manifest atomically, so a reader never sees half of it.
"""

from __future__ import annotations

from pathlib import Path

from landmark_finder.core.progress import Progress
from landmark_finder.recognition import store
from landmark_finder.recognition.index import Index, WriterLock
from landmark_finder.recognition.indexing import (
    BuildReport,
    WriteOptions,
    finish_change,
    open_writable,
)


def compact_index(path: Path, options: WriteOptions | None = None) -> tuple[int, int]:
    """Rewrite the live photos of every segment as one segment (dropping removed photos'
    data); the decision model is unchanged. Returns (segments before, photos)."""
    opts = options or WriteOptions()
    path = Path(path)
    store.read_manifest(path)
    with WriterLock(path, opts.wait, opts.on_wait) as lock:
        index = open_writable(path)
        before = len(index.segments)
        index.segments = [index.write_segment(path)]
        index.commit(lock)
        return before, len(index.records)


def refit_index(
    path: Path, progress: Progress | None = None, options: WriteOptions | None = None
) -> BuildReport:
    """Refit whitening, calibration and verified scoring (after ``--no-refit`` changes)."""
    opts = options or WriteOptions()
    path = Path(path)
    store.read_manifest(path)
    with WriterLock(path, opts.wait, opts.on_wait) as lock:
        index = open_writable(path)
        return finish_change(index, lock, WriteOptions(refit=True), progress, BuildReport(), 0)


def upgrade_index(path: Path, options: WriteOptions | None = None) -> bool:
    """Convert a format-1 index to format 2 in place (atomically); False if it already was."""
    opts = options or WriteOptions()
    path = Path(path)
    with WriterLock(path, opts.wait, opts.on_wait) as lock:
        if not store.is_format1(path):
            store.read_manifest(path)
            return False
        index = Index.open(path)
        index.segments = [index.write_segment(path)]
        index.commit(lock)
        return True

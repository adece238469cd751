"""Index building and incremental updates: photos → descriptors → index directory.

A new landmark needs photos, not retraining: ``add_photos`` describes only the new photos
(on every core), writes them as one new segment, refits whitening and calibration when the
gallery has changed enough since they were fitted (``Index.refit_due``; bounded: sampled in big
galleries; ``refit=False`` defers it to :func:`refit_index`) and publishes a new manifest.
Every change holds the index's writer lock (see :mod:`~.store`), so two processes adding photos
at once both land, one after the other.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landmark_finder import defaults
from landmark_finder.backbones import sscd
from landmark_finder.core.catalog import Catalog
from landmark_finder.core.descriptors import Extractor, Preprocessing
from landmark_finder.core.gallery import scan_gallery
from landmark_finder.core.images import ImageLoadError, content_hash, iter_image_files
from landmark_finder.core.progress import Progress
from landmark_finder.i18n import N_
from landmark_finder.recognition import store
from landmark_finder.recognition.describing import describe_paths
from landmark_finder.recognition.index import Index, LandmarkIndexError, PhotoRecord, WriterLock
from landmark_finder.recognition.negatives import builtin_negatives
from landmark_finder.verify.keypoints import LocalConfig, LocalStore

log = logging.getLogger(__name__)


@dataclass
class WriteOptions:
    """How a change is written: parallelism, waiting for another writer, refitting."""

    workers: int | None = None  # describing processes; None: every core
    wait: bool = True  # wait for another writer (False: fail at once with IndexBusy)
    on_wait: Callable[[str], None] | None = None  # told once when waiting
    #: Refit the decision model now (True), not until `index refit` (False), or when the
    #: gallery has changed enough since the last fit (None: ``Index.refit_due``).
    refit: bool | None = None
    ray: str | None = None  # describe on Ray: "" starts a local instance, else its address


@dataclass
class BuildReport:
    n_photos: int = 0
    n_landmarks: int = 0
    n_distractors: int = 0
    skipped: list[str] = field(default_factory=list)  # one line per unreadable/duplicate photo
    warnings: list[str] = field(default_factory=list)
    cv_top1: float = float("nan")
    refitted: bool = False  # the decision model was refitted by this change
    fitted_photos: int = 0  # photos the decision model is fitted on
    changed_since_fit: int = 0  # photos added or removed since
    refit_after: int = 0  # changed photos from which a change refits it by itself


#: Below these, gallery cross-validation has too few examples of "right" and of "unknown" to
#: calibrate well (a 5 × 10 gallery: cross-validated top-1 0.94 but every blank "recognized"
#: before the built-in negatives; the few-shot table in the README: 10 photos per landmark lose
#: 7 points of top-1 against 24–60).
MIN_LANDMARKS = 10
MIN_PHOTOS_PER_LANDMARK = 10


def _photos_per_landmark(index: Index) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in index.records:
        counts[r.landmark_id] = counts.get(r.landmark_id, 0) + 1
    return counts


def small_gallery_warnings(index: Index) -> list[str]:
    """One warning when the gallery is too small to calibrate "unknown" well, else none."""
    counts = _photos_per_landmark(index)
    few = sorted(lid for lid, n in counts.items() if n < MIN_PHOTOS_PER_LANDMARK)
    if len(counts) >= MIN_LANDMARKS and not few:
        return []
    parts = []
    if len(counts) < MIN_LANDMARKS:
        parts.append(f"only {len(counts)} landmark{'s' * (len(counts) != 1)}")
    if few:
        shown = ", ".join(few[:5]) + (f" and {len(few) - 5} more" if len(few) > 5 else "")
        parts.append(f"fewer than {MIN_PHOTOS_PER_LANDMARK} photos of {shown}")
    return [
        f"small gallery ({'; '.join(parts)}): too little to calibrate confidence well; "
        f"aim for at least {MIN_LANDMARKS} landmarks with {MIN_PHOTOS_PER_LANDMARK} photos each, "
        'and give --distractors (photos of no landmark) if you can. Until then, "unknown" '
        "leans on the built-in non-landmark pictures and content checks"
    ]


def few_photos_advice(index: Index) -> list[str]:
    """A hint when most landmarks have fewer than 10 photos and the index is not built for
    that (README, "Few reference photos": at 3 photos per landmark, top-1 0.73 -> 0.83)."""
    counts = _photos_per_landmark(index)
    median = float(np.median(list(counts.values()))) if counts else 0.0
    if not counts or median >= MIN_PHOTOS_PER_LANDMARK:
        return []
    if sscd.is_fused(index.backbone) and index.preprocessing.views != "full":
        return []
    fused = sscd.with_sscd(index.backbone)
    return [
        f"most landmarks have fewer than {MIN_PHOTOS_PER_LANDMARK} photos (median {median:g}): "
        f'`--views crops --backbone {fused}` recognizes them better (README, "Few reference '
        'photos")'
    ]


def _records(
    photos: list[tuple[str, Path]], known_hashes: set[str], report: BuildReport
) -> list[tuple[str, Path, str]]:
    """Drop byte-identical duplicates (they would only inflate one landmark's evidence)."""
    out, seen = [], set(known_hashes)
    for lid, p in photos:
        try:
            h = content_hash(p)
        except ImageLoadError as e:
            report.skipped.append(str(e))
            continue
        if h in seen:
            report.skipped.append(f"{p}: duplicate of a photo already in the index; skipped")
            continue
        seen.add(h)
        out.append((lid, p, h))
    return out


def _add(
    index: Index,
    extractor: Extractor,
    items: list[tuple[str, Path, str]],
    report: BuildReport,
    progress: Progress | None,
    root: Path | None = None,
    workers: int | None = None,
    ray: str | None = None,
) -> None:
    """Describe ``items`` and append them to ``index``; with ``root``, as a new segment there."""
    by_path = {p: (lid, h) for lid, p, h in items}
    cfg = index.local.config if index.local is not None else None
    ok, vecs, feats = describe_paths(
        extractor,
        [p for _, p, _ in items],
        N_("describing photos"),
        report.skipped,
        progress,
        cfg,
        workers,
        ray,
    )
    if not ok:
        return
    records = [PhotoRecord(by_path[p][0], str(p.resolve()), by_path[p][1]) for p in ok]
    views = vecs[:, 1:] if vecs.shape[1] > 1 else None
    if root is not None:  # the new photos' keypoints encoded with the index's codebook
        local = LocalStore.from_features(cfg, feats, index.local.codebook) if cfg else None
        codebook = local.codebook.centroids if local and local.codebook else None
        seg = store.write_segment(
            root, records, vecs[:, 0], local.arrays() if local else None, codebook
        )
        index.append(seg, records, vecs[:, 0], local, views)
    else:  # building: written as one segment at the end
        index.records += records
        index.add_vectors(vecs[:, 0], views)
        if index.local is not None:
            index.local = index.local.extend(feats)


def _refit(index: Index, progress: Progress | None):
    """Refit the decision model, reporting the verification part (minutes for big galleries)."""
    return index.refit(
        None
        if progress is None
        else (lambda done, total: progress(done, total, N_("fitting verification")))
    )


@dataclass(frozen=True)
class IndexConfig:
    """How an index is built: what the CLI's, the desktop app's and the benchmark's options set.

    ``preprocessing`` None: the backbone's default (``defaults.INPUT_SIZE``). ``local`` (default:
    upright root-SIFT, 1,000 keypoints) stores keypoints of every photo for geometric
    verification; ``None`` builds a global-descriptor-only index. ``approximate``: faiss HNSW
    search for very large galleries. ``whiten``: learned whitening fitted on the gallery.
    """

    backbone: str = defaults.BACKBONE
    preprocessing: Preprocessing | None = None
    approximate: bool = False
    whiten: bool = True
    local: LocalConfig | None = field(default_factory=LocalConfig)


def build_index(
    gallery: Path,
    out: Path,
    catalog: Catalog | None = None,
    config: IndexConfig | None = None,
    distractors: Path | None = None,
    progress: Progress | None = None,
    extractor: Extractor | None = None,
    options: WriteOptions | None = None,
    negatives: bool = True,
) -> tuple[Index, BuildReport]:
    """Describe every gallery photo, fit the decision model, and write the index at ``out``.

    ``distractors``: a folder of photos with no landmark, used to calibrate "unknown".
    ``extractor``: an already created one (it must match ``config``'s backbone). The result is
    the same whatever ``options.workers`` is.
    ``negatives`` (default): calibrate against the built-in non-landmark pictures too.
    """
    config = config or IndexConfig()
    local = config.local
    opts = options or WriteOptions()
    report = BuildReport()
    scan = scan_gallery(gallery)
    report.warnings += scan.warnings
    cat, warns = (catalog or Catalog()).with_gallery(scan.landmark_ids)
    report.warnings += warns
    ex = extractor or Extractor.create(config.backbone, config.preprocessing)
    index = Index(
        ex.backbone_name,
        ex.weights_hash,
        ex.preprocessing,
        np.zeros((0, ex.dim), np.float32),
        [],
        cat,
        approximate=config.approximate,
        whiten=config.whiten,
        local=LocalStore.empty(local) if local is not None else None,
    )
    items = _records(scan.photos, set(), report)
    _add(index, ex, items, report, progress, workers=opts.workers, ray=opts.ray)
    if not index.records:
        raise LandmarkIndexError(
            f"{gallery}: no readable photos in landmark sub-folders; nothing to index"
        )
    if distractors is not None:
        _, dgrid, _ = describe_paths(
            ex,
            iter_image_files(Path(distractors)),
            N_("describing distractors"),
            report.skipped,
            progress,
            workers=opts.workers,
            ray=opts.ray,
        )
        index.distractors = dgrid if dgrid.shape[1] > 1 else dgrid[:, 0]
        report.n_distractors = len(index.distractors)
    if negatives:
        index.negatives = builtin_negatives(ex)
    report.warnings += small_gallery_warnings(index) + few_photos_advice(index)
    rep = _refit(index, progress)
    index.save(out, opts.wait, opts.on_wait)
    _summary(report, index, rep.cv_top1)
    return index, report


def _summary(report: BuildReport, index: Index, cv_top1: float | None = None) -> BuildReport:
    report.n_photos, report.n_landmarks = len(index.records), len(index.landmark_ids)
    report.fitted_photos, report.changed_since_fit = index.fitted_photos, index.changed_since_fit
    report.refit_after = index.refit_after
    if cv_top1 is not None:
        report.cv_top1 = cv_top1
    return report


def finish_change(
    index: Index, lock: WriterLock, opts: WriteOptions, progress, report, changed: int
) -> BuildReport:
    """Count the ``changed`` photos, refit when asked or due (else keep the fitted model, or mark
    the refit as pending when deferred) and publish the new manifest."""
    cv = None
    index.changed_since_fit += changed
    if index.refit_due() if opts.refit is None else opts.refit:
        cv = _refit(index, progress).cv_top1
        report.refitted = True
    elif opts.refit is False:
        index.refit_pending = True
    index.commit(lock)
    return _summary(report, index, cv)


def open_for_update(path: Path) -> tuple[Index, Extractor]:
    """Open an index and an extractor that is guaranteed to produce compatible descriptors."""
    from landmark_finder.recognition.recognizer import extractor_for

    index = open_writable(path)
    return index, extractor_for(index)


def open_writable(path: Path) -> Index:
    """Open an index for a change: format 2 only (format 1 needs ``index upgrade``)."""
    store.read_manifest(path)  # the clear "run index upgrade" error for format 1
    return Index.open(path)


def add_photos(
    path: Path,
    photos: list[tuple[str, Path]],
    catalog: Catalog | None = None,
    progress: Progress | None = None,
    options: WriteOptions | None = None,
) -> BuildReport:
    """Add ``(landmark_id, photo)`` pairs (new or existing landmarks) to the index at ``path``.

    Writes one segment with the new photos only; the index is read after the writer lock is
    taken, so a concurrent writer's photos are kept.
    """
    opts = options or WriteOptions()
    report = BuildReport()
    path = Path(path)
    store.read_manifest(path)  # fail before waiting when it is no format-2 index at all
    with WriterLock(path, opts.wait, opts.on_wait) as lock:
        index, ex = open_for_update(path)
        if catalog is not None:  # new rows (or corrections) for the landmarks being added
            merged = Catalog([catalog.get(lm.id) or lm for lm in index.catalog])
            for lm in catalog:
                if lm.id not in merged:
                    merged.add(lm)
            index.catalog = merged
        index.catalog, warns = index.catalog.with_gallery({lid for lid, _ in photos})
        report.warnings += warns
        items = _records(photos, {r.sha256 for r in index.records}, report)
        before = {s.name for s in index.segments}
        n_before = len(index.records)
        try:
            _add(index, ex, items, report, progress, root=path, workers=opts.workers)
            if index.negatives is None:  # an index built before the built-in negatives existed
                index.negatives = builtin_negatives(ex)
            report.warnings += small_gallery_warnings(index)
            added = len(index.records) - n_before
            return finish_change(index, lock, opts, progress, report, added)
        except BaseException:  # unless published, our new segment is debris (we hold the lock)
            live = {seg.name for seg in store.read_manifest(path).segments}
            for seg in index.segments:
                if seg.name not in before and seg.name not in live:
                    shutil.rmtree(path / "segments" / seg.name, ignore_errors=True)
            raise


def add_segments(
    path: Path,
    segments: list[store.SegmentRef],
    progress: Progress | None = None,
    options: WriteOptions | None = None,
) -> BuildReport:
    """Publish segments already written with :func:`store.write_segment` (by other processes
    or machines, without the lock) into the index at ``path``, then refit (unless deferred).

    The segments' descriptors must come from the index's model (same backbone, weights and
    preprocessing); duplicates of photos already indexed are not filtered here.
    """
    opts = options or WriteOptions()
    path = Path(path)
    store.read_manifest(path)
    with WriterLock(path, opts.wait, opts.on_wait) as lock:
        index = open_writable(path)
        cfg = index.local.config if index.local is not None else None
        for seg in segments:
            recs, desc, local, live = store.load_segment(path, seg, cfg is not None)
            if len(live) != seg.rows:
                raise LandmarkIndexError(
                    f"segment {seg.name} has tombstones; it was published before"
                )
            ls = LocalStore.from_arrays(cfg, *local) if cfg is not None else None
            index.append(seg, recs, np.asarray(desc, np.float32), ls)
        added = sum(seg.rows for seg in segments)
        return finish_change(index, lock, opts, progress, BuildReport(), added)


def remove_photos(
    path: Path,
    landmarks: list[str] = (),
    photos: list[Path] = (),
    progress: Progress | None = None,
    options: WriteOptions | None = None,
) -> tuple[int, BuildReport]:
    """Remove a landmark's photos, or single photos (matched by path or content), from the index.

    Catalog rows stay, so the landmark is still listed; with no photos it is never predicted.
    Writes tombstones (the segments stay until ``index compact``). Returns the number of photos
    removed.
    """
    opts = options or WriteOptions()
    report = BuildReport()
    path = Path(path)
    store.read_manifest(path)
    with WriterLock(path, opts.wait, opts.on_wait) as lock:
        index = open_writable(path)
        unknown = [lid for lid in landmarks if lid not in set(index.landmark_ids)]
        if unknown:
            raise LandmarkIndexError(f"no photos of landmark(s) {', '.join(unknown)} in the index")
        drop_paths = {str(Path(p).resolve()) for p in photos}
        drop_hashes = set()
        for p in photos:
            try:
                drop_hashes.add(content_hash(p))
            except ImageLoadError:
                pass  # a photo already deleted from disk is still removable by its path
        keep = [
            i
            for i, r in enumerate(index.records)
            if r.landmark_id not in landmarks
            and r.path not in drop_paths
            and r.sha256 not in drop_hashes
        ]
        removed = len(index.records) - len(keep)
        if removed == 0:
            return 0, _summary(report, index)
        if not keep:
            raise LandmarkIndexError("refusing to remove every photo: an index needs at least one")
        index.keep_rows(keep)
        return removed, finish_change(index, lock, opts, progress, report, removed)

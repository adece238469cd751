"""Index building and incremental updates: photos → descriptors → index directory.

A new landmark needs photos, not retraining: ``add_photos`` describes only the new photos,
refits whitening and calibration (seconds; about a minute per thousand photos with verification)
and writes a new index version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landmark_finder import defaults
from landmark_finder.core.catalog import Catalog
from landmark_finder.core.descriptors import Extractor, Preprocessing
from landmark_finder.core.gallery import scan_gallery
from landmark_finder.core.images import ImageLoadError, content_hash, iter_image_files, load_image
from landmark_finder.core.progress import Progress
from landmark_finder.core.views import MIN_CROP_FRACTION
from landmark_finder.recognition.index import Index, LandmarkIndexError, PhotoRecord
from landmark_finder.recognition.negatives import builtin_negatives
from landmark_finder.verify.keypoints import LocalConfig, LocalFeatures, LocalStore, extract

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    n_photos: int = 0
    n_landmarks: int = 0
    n_distractors: int = 0
    skipped: list[str] = field(default_factory=list)  # one line per unreadable/duplicate photo
    warnings: list[str] = field(default_factory=list)
    cv_top1: float = float("nan")


def _describe(
    extractor: Extractor,
    paths: list[Path],
    what: str,
    report: BuildReport,
    progress: Progress | None,
    local: LocalConfig | None = None,
) -> tuple[list[Path], np.ndarray, list[LocalFeatures]]:
    """Global descriptors (N, V, D) of every view of each photo (and, with ``local``, its
    keypoints), decoding it once; unreadable photos are reported and skipped."""
    pre = extractor.preprocessing
    side = int(pre.size * max(pre.scales))
    if pre.n_views > 1:
        side = int(round(side / MIN_CROP_FRACTION))
    if local is not None:
        side = max(side, local.side)
    ok, vecs, feats = [], [], []
    for i, p in enumerate(paths):
        try:
            img = load_image(p, max_side=side)
            vec = extractor.describe_views(img)
            feat = extract(img, local) if local is not None else None
        except ImageLoadError as e:
            report.skipped.append(str(e))
        except Exception as e:  # one bad photo must not cost the whole build
            log.debug("describing %s failed", p, exc_info=True)
            reason = " ".join(f"{type(e).__name__}: {e}".split())
            report.skipped.append(f"{p}: cannot describe ({reason}); skipped")
        else:
            vecs.append(vec)
            if feat is not None:
                feats.append(feat)
            ok.append(p)
        if progress:
            progress(i + 1, len(paths), what)
    arr = np.stack(vecs) if vecs else np.zeros((0, pre.n_views, extractor.dim), np.float32)
    return ok, arr, feats


#: Below these, gallery cross-validation has too few examples of "right" and of "unknown" to
#: calibrate well (a 5 × 10 gallery: cross-validated top-1 0.94 but every blank "recognized"
#: before the built-in negatives; the few-shot table in the README: 10 photos per landmark lose
#: 7 points of top-1 against 24–60).
MIN_LANDMARKS = 10
MIN_PHOTOS_PER_LANDMARK = 10


def small_gallery_warnings(index: Index) -> list[str]:
    """One warning when the gallery is too small to calibrate "unknown" well, else none."""
    counts: dict[str, int] = {}
    for r in index.records:
        counts[r.landmark_id] = counts.get(r.landmark_id, 0) + 1
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
) -> None:
    by_path = {p: (lid, h) for lid, p, h in items}
    ok, vecs, feats = _describe(
        extractor,
        [p for _, p, _ in items],
        "describing photos",
        report,
        progress,
        index.local.config if index.local is not None else None,
    )
    if index.local is not None:
        index.local = index.local.extend(feats)
    index.records += [PhotoRecord(by_path[p][0], str(p.resolve()), by_path[p][1]) for p in ok]
    index.descriptors = np.concatenate([index.descriptors, vecs[:, 0]])
    if vecs.shape[1] > 1:
        extra = vecs[:, 1:]
        index.views = extra if index.views is None else np.concatenate([index.views, extra])


def _refit_and_save(
    index: Index, out: Path, report: BuildReport, progress: Progress | None
) -> None:
    """Refit the decision model (reporting the verification part: minutes for big galleries),
    write the index, and fill in the report's totals."""
    rep = index.refit(
        None
        if progress is None
        else (lambda done, total: progress(done, total, "fitting verification"))
    )
    index.save(out)
    report.n_photos, report.n_landmarks, report.cv_top1 = (
        len(index.records),
        len(index.landmark_ids),
        rep.cv_top1,
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
    negatives: bool = True,
) -> tuple[Index, BuildReport]:
    """Describe every gallery photo, fit the decision model, and write the index at ``out``.

    ``distractors``: a folder of photos with no landmark, used to calibrate "unknown".
    ``extractor``: an already created one (it must match ``config``'s backbone).
    ``negatives`` (default): calibrate against the built-in non-landmark pictures too.
    """
    config = config or IndexConfig()
    local = config.local
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
    _add(index, ex, _records(scan.photos, set(), report), report, progress)
    if not index.records:
        raise LandmarkIndexError(
            f"{gallery}: no readable photos in landmark sub-folders; nothing to index"
        )
    if distractors is not None:
        _, dgrid, _ = _describe(
            ex, iter_image_files(Path(distractors)), "describing distractors", report, progress
        )
        index.distractors = dgrid if dgrid.shape[1] > 1 else dgrid[:, 0]
        report.n_distractors = len(index.distractors)
    if negatives:
        index.negatives = builtin_negatives(ex)
    report.warnings += small_gallery_warnings(index)
    _refit_and_save(index, out, report, progress)
    return index, report


def open_for_update(path: Path) -> tuple[Index, Extractor]:
    """Open an index and an extractor that is guaranteed to produce compatible descriptors."""
    from landmark_finder.recognition.recognizer import extractor_for

    index = Index.open(path)
    return index, extractor_for(index)


def add_photos(
    path: Path,
    photos: list[tuple[str, Path]],
    catalog: Catalog | None = None,
    progress: Progress | None = None,
) -> BuildReport:
    """Add ``(landmark_id, photo)`` pairs (new or existing landmarks) to the index at ``path``."""
    report = BuildReport()
    index, ex = open_for_update(path)
    if catalog is not None:  # new rows (or corrections) for the landmarks being added
        merged = Catalog([catalog.get(lm.id) or lm for lm in index.catalog])
        for lm in catalog:
            if lm.id not in merged:
                merged.add(lm)
        index.catalog = merged
    index.catalog, warns = index.catalog.with_gallery({lid for lid, _ in photos})
    report.warnings += warns
    _add(index, ex, _records(photos, {r.sha256 for r in index.records}, report), report, progress)
    if index.negatives is None:  # an index built before the built-in negatives existed
        index.negatives = builtin_negatives(ex)
    report.warnings += small_gallery_warnings(index)
    _refit_and_save(index, path, report, progress)
    return report


def remove_photos(
    path: Path,
    landmarks: list[str] = (),
    photos: list[Path] = (),
    progress: Progress | None = None,
) -> tuple[int, BuildReport]:
    """Remove a landmark's photos, or single photos (matched by path or content), from the index.

    Catalog rows stay, so the landmark is still listed; with no photos it is never predicted.
    Returns the number of photos removed.
    """
    report = BuildReport()
    index = Index.open(path)
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
        return 0, report
    if not keep:
        raise LandmarkIndexError("refusing to remove every photo: an index needs at least one")
    index.descriptors = index.descriptors[keep]
    if index.views is not None:
        index.views = index.views[keep]
    index.records = [index.records[i] for i in keep]
    if index.local is not None:
        index.local = index.local.subset(keep)
    _refit_and_save(index, path, report, progress)
    return removed, report

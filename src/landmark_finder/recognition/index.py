"""The gallery index: a self-contained directory that ``recognize`` needs and nothing else.

Format 2 (see :mod:`landmark_finder.recognition.store`): immutable segments of photos plus
an atomically swapped manifest holding the settings and the fitted decision model. This module
is the in-memory view (:class:`Index`) and how it is read and written; ``indexing`` adds,
removes and compacts. Format 1 (one complete folder per version, ``v-<stamp>/``) is still read,
so old indexes keep answering; changing one needs ``landmark-finder index upgrade`` first.
Nothing is unpickled when reading (``allow_pickle=False``, JSON, CSV).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landmark_finder import defaults
from landmark_finder.backbones import sscd
from landmark_finder.core.catalog import Catalog, save_catalog
from landmark_finder.core.decision import Calibrator
from landmark_finder.core.descriptors import Preprocessing
from landmark_finder.core.progress import Progress
from landmark_finder.core.search import (
    COMPRESSED_MIN,
    COMPRESSED_VECTOR_DTYPE,
    SEARCHES,
    ApproximateSearch,
    CompressedSearch,
    ProjectedRows,
    Searcher,
    StoredRows,
    read_compressed,
    trained_codes,
)
from landmark_finder.core.whitening import Whitening
from landmark_finder.errors import IndexBusy, LandmarkIndexError
from landmark_finder.recognition import store
from landmark_finder.recognition.calibration import CalibrationReport, fit_model
from landmark_finder.recognition.store import (
    FORMAT_VERSION,
    Manifest,
    PhotoRecord,
    SegmentRef,
    WriterLock,
)
from landmark_finder.recognition.verified_fit import fit_verified
from landmark_finder.verify.keypoints import LocalStore, LocalView
from landmark_finder.verify.matching import VerifiedModel, VerifyConfig

__all__ = [
    "FORMAT_VERSION",
    "Index",
    "IndexBusy",
    "LandmarkIndexError",
    "PhotoRecord",
    "WriterLock",
]


#: Below this many landmarks the fitted model is mostly defaults: any change refits it.
REFIT_MIN_LANDMARKS = 3
#: Photos whose descriptors are projected at once when the search structure is built.
PROJECT_CHUNK = 16_384


@dataclass
class Index:
    """Gallery descriptors, their records, the catalog, and the fitted decision model."""

    backbone: str
    weights_hash: str
    preprocessing: Preprocessing
    descriptors: np.ndarray
    records: list[PhotoRecord]
    catalog: Catalog
    calibrator: Calibrator = field(default_factory=Calibrator)
    whitening: Whitening | None = None
    distractors: np.ndarray | None = None
    approximate: bool = False
    whiten: bool = True  # setting; ``whitening`` is None when the gallery was too small to fit
    calibration_report: dict = field(default_factory=dict)
    created: str = ""
    local: LocalStore | LocalView | None = None  # keypoints per gallery row, for verification
    verified: VerifiedModel | None = None  # how verified queries are scored and calibrated
    #: Where the rows live on disk, in row order (empty until the index is first written).
    segments: list[SegmentRef] = field(default_factory=list)
    version: str = ""  # the manifest (or format-1 folder) this was read from
    refit_pending: bool = False  # photos changed with --no-refit; `index refit` brings it up
    #: Photos and landmarks the decision model was last fitted on, and photos added or removed
    #: since (0, 0, 0: unknown, e.g. an index written before they were kept: refit when changed).
    fitted_photos: int = 0
    fitted_landmarks: int = 0
    changed_since_fit: int = 0
    views: np.ndarray | None = None  # (N, V-1, D) descriptors of each photo's other views
    negatives: np.ndarray | None = None  # built-in non-landmark descriptors for calibration
    _searcher: Searcher | None = field(default=None, repr=False)
    _ann_path: Path | None = field(default=None, repr=False)
    #: The compressed search's stored row lengths (this format) or, in versions written
    #: before those, its stored vectors.
    _ann_lengths_path: Path | None = field(default=None, repr=False)
    _ann_vectors_path: Path | None = field(default=None, repr=False)
    #: The compressed search of the version whose rows were then changed (photos added or
    #: removed, the whitening kept): a rebuild reuses its rotation and codebooks.
    _trained_from: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Held as stored (float16: half the RAM of float32, 2.5 KB per photo at 1,280
        # dimensions); every computation converts the rows it uses to float32. An index being
        # built then fits its model on exactly the values it will be reopened with.
        self.descriptors = np.asarray(self.descriptors, store.DESCRIPTOR_DTYPE)
        if self.views is not None:
            self.views = np.asarray(self.views, store.DESCRIPTOR_DTYPE)

    # -- derived views -------------------------------------------------------------------

    @property
    def blocks(self) -> tuple[int, ...]:
        """The parts of a fused descriptor (``backbones.sscd``), each whitened on its own."""
        return sscd.blocks(self.backbone, self.descriptors.shape[1])

    @property
    def landmark_ids(self) -> list[str]:
        """Landmarks that have at least one reference photo, in stable (sorted) order."""
        return sorted({r.landmark_id for r in self.records})

    def photo_families(self) -> np.ndarray:
        """Group id per photo: augmented variants (``x__aug3.jpg``) share their source's id."""
        from landmark_finder.core.naming import augmented_source_stem

        keys = [
            (r.landmark_id, augmented_source_stem(r.path) or Path(r.path).stem)
            for r in self.records
        ]
        ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
        return np.array([ids[k] for k in keys], np.int64)

    def row_labels(self) -> np.ndarray:
        pos = {lid: i for i, lid in enumerate(self.landmark_ids)}
        return np.array([pos[r.landmark_id] for r in self.records], np.int64)

    @property
    def n_views(self) -> int:
        """Vectors per gallery photo: the whole photo plus its stored crops."""
        return 1 + (self.views.shape[1] if self.views is not None else 0)

    def grid(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Raw descriptors of every view, (N, V, D); view 0 is ``descriptors``."""
        d = self.descriptors if rows is None else self.descriptors[rows]
        if self.views is None:
            return np.asarray(d, np.float32)[:, None, :]
        v = self.views if rows is None else self.views[rows]
        return np.concatenate([np.asarray(d, np.float32)[:, None, :], v], axis=1)

    def sites(self) -> np.ndarray | None:
        """Site number per label (``core.sites``), or None when no two landmarks share one."""
        from landmark_finder.core.sites import NO_SITE, site_ids

        ids = site_ids(self.landmark_ids, {lm.id: lm.site for lm in self.catalog})
        return ids if (ids != NO_SITE).any() else None

    def project(self, x: np.ndarray) -> np.ndarray:
        return self.whitening(x) if self.whitening is not None else np.asarray(x, np.float32)

    @property
    def searcher(self) -> Searcher:
        if self._searcher is None:
            if self.search_name == "compressed":
                self._searcher = self._compressed_search()
            else:
                vecs, _ = self._searched_vectors()
                self._searcher = SEARCHES.get(self.search_name)(vecs, self._ann_path)
        return self._searcher

    def _searched_vectors(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Every searched vector, (N*V, d) float32 (photo i's views are rows i*V .. i*V+V-1),
        and, whitened, its length before normalising (else None). Projected a chunk of rows
        at a time: a float32 copy of all the stored float16 rows never exists at once (at
        100,000 photos it would add 500 MB to the peak of opening the index)."""
        n = len(self.descriptors)
        d = self.whitening.projection.shape[1] if self.whitening else self.descriptors.shape[1]
        vecs = np.empty((n, self.n_views, d), np.float32)
        parts = (len(self.whitening.blocks),) if self.whitening and self.whitening.blocks else ()
        lengths = np.empty((n, self.n_views, *parts), np.float32) if self.whitening else None
        for start in range(0, n, PROJECT_CHUNK):
            rows = np.arange(start, min(n, start + PROJECT_CHUNK))
            if self.whitening is None:
                vecs[rows] = self.grid(rows)
            else:
                vecs[rows], lengths[rows] = self.whitening.with_lengths(self.grid(rows))
        return vecs.reshape(n * self.n_views, d), (
            lengths.reshape(n * self.n_views, *parts) if lengths is not None else None
        )

    def _compressed_search(self) -> CompressedSearch:
        """The compressed search this version saved (opening it projects nothing and keeps
        only the codes in memory), else one built now. Its shortlist is re-scored from the
        descriptors the index holds anyway, through the whitening (``ProjectedRows``): no
        second copy of the gallery on disk."""
        n = len(self.descriptors) * self.n_views
        rows = GridRows(self.descriptors, self.views)
        found = None
        if self._ann_path is not None and self.segments:  # format 2 saved one
            if self._ann_vectors_path is not None:  # written before the lengths were stored
                found = read_compressed(self._ann_path, self._ann_vectors_path, n)
            elif self.whitening is None:
                found = read_compressed(self._ann_path, StoredRows(rows), n)
            elif self._ann_lengths_path is not None:
                lengths = np.load(self._ann_lengths_path, mmap_mode="r", allow_pickle=False)
                if len(lengths) == n:
                    found = read_compressed(self._ann_path, self._projected(rows, lengths), n)
        if found is not None:
            return found
        vecs, lengths = self._searched_vectors()
        trained = trained_codes(self._trained_from) if self._trained_from is not None else None
        rescore = StoredRows(rows) if lengths is None else self._projected(rows, lengths)
        return CompressedSearch.build(vecs, rescore=rescore, trained=trained)

    def _projected(self, rows: GridRows, lengths: np.ndarray) -> ProjectedRows:
        w = self.whitening
        assert w is not None
        return ProjectedRows(rows, w.mean, w.projection, lengths, w.blocks)

    @property
    def search_name(self) -> str:
        """The :data:`SEARCHES` entry queries use: compressed from ``COMPRESSED_MIN`` searched
        vectors on, else HNSW when the index was built with it, else exact."""
        if len(self.descriptors) * self.n_views >= COMPRESSED_MIN:
            return "compressed"
        return "approximate" if self.approximate else "exact"

    @property
    def search_kind(self) -> str:
        """How queries are searched, for people (``index info``)."""
        return {
            "compressed": "compressed (PQ fast scan, re-ranked, exact re-scoring)",
            "approximate": "approximate (HNSW)",
        }.get(self.search_name, "exact")

    # -- fitting -------------------------------------------------------------------------

    def refit(self, progress: Progress | None = None) -> CalibrationReport:
        """Refit whitening and calibration after the gallery changed (and, with local
        features, the verified scoring; ``progress`` follows that slower part)."""
        self.whitening, self.calibrator, report = fit_model(
            self.grid(),
            self.row_labels(),
            self.distractors,
            whiten=self.whiten,
            groups=self.photo_families(),
            threshold=self.calibrator.threshold,
            sites=self.sites(),
            negatives=self.negatives,
            blocks=self.blocks,
        )
        self.calibration_report = report.to_dict()
        self.fitted_photos, self.fitted_landmarks = len(self.records), len(self.landmark_ids)
        self.changed_since_fit, self.refit_pending = 0, False
        if self.local is not None:
            if len(self.local) != len(self.records):
                raise LandmarkIndexError(
                    f"{len(self.local)} photos with local features but "
                    f"{len(self.records)} records; rebuild the index"
                )
            self.verified = fit_verified(
                self.grid(),
                self.row_labels(),
                self.local,
                self.verified.config if self.verified else VerifyConfig(),
                whiten=self.whitening is not None,
                threshold=self.calibrator.threshold,
                groups=self.photo_families(),
                progress=progress,
                sites=self.sites(),
                negatives=self.negatives,
                whitening=self.whitening,
                global_calibrator=self.calibrator,
                blocks=self.blocks,
            )
        self._forget_search(retrain=True)  # a new whitening: new searched vectors
        return report

    @property
    def refit_after(self) -> int:
        """Photos added or removed since the last fit from which a change refits the decision
        model by itself: ``defaults.REFIT_SHARE`` of those it was fitted on (1 when that fit
        saw too few landmarks to mean much, or was never recorded)."""
        if self.fitted_landmarks < REFIT_MIN_LANDMARKS:
            return 1
        return max(1, math.ceil(defaults.REFIT_SHARE * self.fitted_photos))

    def refit_due(self) -> bool:
        """Whether a change should refit the decision model now (a refit deferred with
        ``--no-refit`` is due at the next change that does not defer it again)."""
        return self.refit_pending or self.changed_since_fit >= self.refit_after

    def subset(self, rows: np.ndarray) -> Index:
        """An in-memory index over some gallery rows, refitted (few-shot evaluation)."""
        rows = np.asarray(rows, np.int64)
        sub = Index(
            self.backbone,
            self.weights_hash,
            self.preprocessing,
            self.descriptors[rows],
            [self.records[i] for i in rows],
            self.catalog,
            Calibrator(threshold=self.calibrator.threshold),
            None,
            self.distractors,
            self.approximate,
            self.whiten,
            local=self.local.subset(rows) if self.local is not None else None,
            verified=self.verified,
            views=self.views[rows] if self.views is not None else None,
            negatives=self.negatives,
        )
        sub.refit()
        return sub

    # -- rows and segments ----------------------------------------------------------------

    def append(
        self,
        segment: SegmentRef,
        records: list[PhotoRecord],
        descriptors: np.ndarray,
        local: LocalStore | None,
        views: np.ndarray | None = None,
    ) -> None:
        """Add rows that were just written to disk as ``segment`` (see ``store.write_segment``);
        ``views``: their crop views (N, V-1, D), which an index with views needs."""
        if (self.views is None) != (views is None) and len(self.records):
            raise LandmarkIndexError(
                "this index stores crop views (`index build --views crops`); these photos have none"
                if self.views is not None
                else "these photos have crop views but the index has none"
            )
        self.segments.append(segment)
        self.records += records
        self.add_vectors(descriptors, views)
        if self.local is not None:
            feats = [local[i] for i in range(len(local))] if local is not None else []
            self.local = self.local.extend(feats)
        self._forget_search()

    def add_vectors(self, descriptors: np.ndarray, views: np.ndarray | None = None) -> None:
        """Append rows' descriptors (and crop views), held as stored (see ``__post_init__``)."""
        stored = store.DESCRIPTOR_DTYPE
        self.descriptors = np.concatenate([self.descriptors, np.asarray(descriptors, stored)])
        if views is not None:
            v = np.asarray(views, stored)
            self.views = v if self.views is None else np.concatenate([self.views, v])

    def keep_rows(self, keep: list[int]) -> None:
        """Drop every row not in ``keep``: tombstones on disk, a subset in memory."""
        keep_set = set(keep)
        start = 0
        for seg in self.segments:
            live = seg.live_rows()
            seg.deleted = sorted(
                set(seg.deleted) | {int(r) for j, r in enumerate(live) if start + j not in keep_set}
            )
            start += len(live)
        self.segments = [s for s in self.segments if s.live]
        self.descriptors = self.descriptors[keep]
        if self.views is not None:
            self.views = self.views[keep]
        self.records = [self.records[i] for i in keep]
        if self.local is not None:
            self.local = self.local.subset(keep)
        self._forget_search()

    def _forget_search(self, retrain: bool = False) -> None:
        """The rows changed: the search structure (and any persisted one) is stale; what its
        codes learned still holds unless ``retrain`` (the searched vectors changed)."""
        self._trained_from = None if retrain else (self._ann_path or self._trained_from)
        self._searcher = self._ann_path = None
        self._ann_lengths_path = self._ann_vectors_path = None

    def write_segment(self, root: Path) -> SegmentRef:
        """All live rows as one new segment (build, compact, upgrade)."""
        local = self.local.arrays() if self.local is not None else None
        return store.write_segment(root, self.records, self.descriptors, local, self.codebook)

    @property
    def codebook(self) -> np.ndarray | None:
        """Centroids of the compact keypoint descriptors, saved with every segment."""
        cb = self.local.codebook if self.local is not None else None
        return cb.centroids if cb is not None else None

    # -- persistence ---------------------------------------------------------------------

    def _meta(self) -> dict:
        return {
            "backbone": self.backbone,
            "weights_hash": self.weights_hash,
            "preprocessing": self.preprocessing.to_dict(),
            "dim": int(self.descriptors.shape[1]),
            "calibrator": self.calibrator.to_dict(),
            "calibration_report": self.calibration_report,
            "whiten": self.whiten,
            "approximate": self.approximate,
            "local": self.local.config.to_dict() if self.local is not None else None,
            "verification": self.verified.to_dict() if self.verified is not None else None,
            "refit_pending": self.refit_pending,
            "fitted_photos": self.fitted_photos,
            "fitted_landmarks": self.fitted_landmarks,
            "changed_since_fit": self.changed_since_fit,
            "n_photos": len(self.records),
            "n_landmarks": len(self.landmark_ids),
            "created": self.created or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def _model_files(self, root: Path) -> dict[str, str | None]:
        """Write the model's files (content-addressed: unchanged ones are not rewritten)."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            save_catalog(self.catalog, Path(tmp) / "catalog.csv")
            files: dict[str, str | None] = {
                "catalog": store.put_file(
                    root, "catalog", ".csv", (Path(tmp) / "catalog.csv").read_bytes()
                )
            }
        files["whitening"] = files["distractors"] = files["ann"] = None
        files["ann_lengths"] = files["ann_vectors"] = None
        if self.whitening is not None:
            buf = io.BytesIO()
            w = self.whitening
            np.savez(buf, mean=w.mean, projection=w.projection, blocks=np.asarray(w.blocks, int))
            files["whitening"] = store.put_file(root, "whitening", ".npz", buf.getvalue())
        if self.distractors is not None:
            data = store.npy_bytes(np.asarray(self.distractors, np.float32))
            files["distractors"] = store.put_file(root, "distractors", ".npy", data)
        # Model-level, rewritten whole when they change (content-addressed like the rest): the
        # crop views of every live row, in row order, and the built-in negatives.
        files["views"] = files["negatives"] = None
        if self.views is not None:
            data = store.npy_bytes(np.asarray(self.views, store.DESCRIPTOR_DTYPE))
            files["views"] = store.put_file(root, "views", ".npy", data)
        if self.negatives is not None:
            data = store.npy_bytes(np.asarray(self.negatives, np.float32))
            files["negatives"] = store.put_file(root, "negatives", ".npy", data)
        if self.search_name != "exact":
            import faiss

            s = self.searcher
            if isinstance(s, CompressedSearch):
                files["ann"] = store.put_file(root, "ann", ".faiss", s.index_bytes())
                r = s.rescore
                if isinstance(r, ProjectedRows):  # 4 bytes per row
                    data = store.npy_bytes(np.asarray(r.lengths, np.float32))
                    files["ann_lengths"] = store.put_file(root, "ann-lengths", ".npy", data)
                elif isinstance(r, StoredRows) and not isinstance(r.vectors, GridRows):
                    # read from a version that stored its vectors: kept as they are
                    vecs = store.npy_bytes(np.asarray(r.vectors, COMPRESSED_VECTOR_DTYPE))
                    files["ann_vectors"] = store.put_file(root, "ann-vectors", ".npy", vecs)
            elif isinstance(s, ApproximateSearch):
                data = faiss.serialize_index(s.index).tobytes()
                files["ann"] = store.put_file(root, "ann", ".faiss", data)
        return files

    def commit(self, lock: WriterLock) -> str:
        """Publish the index as it is now (its segments already on disk) under ``lock``."""
        root = lock.root
        m = Manifest(
            store.next_generation(root), self._meta(), self.segments, self._model_files(root)
        )
        store.commit(lock, m)
        self.version = m.name
        return m.name

    def save(
        self, root: Path, wait: bool = True, on_wait: Callable[[str], None] | None = None
    ) -> str:
        """Write the whole index as one new segment and make it current atomically (replaces
        what ``root`` held; a crash at any point leaves the previous index usable)."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise LandmarkIndexError(f"{root}: exists and is not an index directory")
        with WriterLock(root, wait, on_wait) as lock:
            self.segments = [self.write_segment(root)]
            return self.commit(lock)

    @classmethod
    def open(cls, root: Path) -> Index:
        """Open the current version; retried when a writer's clean-up raced this reader."""
        root = Path(root)
        for attempt in range(3):
            try:
                if store.is_format1(root):
                    from landmark_finder.recognition.format1 import read_v1

                    fields, ann = read_v1(root)
                    idx = Index(**fields)
                    idx._ann_path = ann
                    return idx
                from landmark_finder.recognition.format2 import read_v2

                fields, ann = read_v2(root)
                idx = Index(**fields)
                idx._ann_path = ann["ann"]
                idx._ann_lengths_path, idx._ann_vectors_path = (
                    ann["ann_lengths"],
                    ann["ann_vectors"],
                )
                return idx
            except FileNotFoundError:
                if attempt == 2:
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")


class GridRows:
    """Rows of the searched grid (photo ``i``'s views are rows ``i*V .. i*V+V-1``, view 0 the
    photo's own descriptor) gathered on demand, without building the (N*V, D) grid."""

    def __init__(self, descriptors: np.ndarray, views: np.ndarray | None):
        self.descriptors, self.views = descriptors, views
        self.n_views = 1 + (views.shape[1] if views is not None else 0)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        if self.views is None:
            return self.descriptors[rows]
        photo, view = np.divmod(np.asarray(rows, np.int64), self.n_views)
        out = np.empty((len(photo), self.descriptors.shape[1]), np.float32)
        own = view == 0
        out[own] = self.descriptors[photo[own]]
        out[~own] = self.views[photo[~own], view[~own] - 1]
        return out

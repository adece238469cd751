"""The gallery index: a self-contained directory that ``recognize`` needs and nothing else.

Layout::

    INDEX/
      CURRENT                 name of the live version directory (replaced atomically)
      v-<stamp>/
        meta.json             format version, backbone, weights hash, preprocessing,
                              calibration, whitening flag, counts
        descriptors.npy       raw gallery descriptors (N, D) float32
        views.npy             descriptors of the other views of each photo (N, V-1, D), when
                              the preprocessing asks for views (``core.views``)
        records.csv           row,landmark_id,path,sha256
        catalog.csv           snapshot of the catalog
        whitening.npz         learned whitening (mean, projection), when fitted
        distractors.npy       non-landmark descriptors, kept to recalibrate after add/remove
        negatives.npy         the built-in non-landmark descriptors (see ``negatives``), ditto
        ann.faiss             HNSW graph, for approximate indexes
        local_xy.npy, local_desc.npy, local_offsets.npy
                              keypoints of every gallery photo, for geometric verification

Every write builds a complete new version directory, fsyncs it, and only then swaps
``CURRENT`` with ``os.replace``: a crash at any point leaves the previous index usable.
Nothing is unpickled when reading (``allow_pickle=False``, JSON, CSV).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landmark_finder.core.atomic import fsync_dir, write_text_atomic
from landmark_finder.core.catalog import Catalog, load_catalog, save_catalog
from landmark_finder.core.decision import Calibrator
from landmark_finder.core.descriptors import Preprocessing
from landmark_finder.core.progress import Progress
from landmark_finder.core.search import SEARCHES, ApproximateSearch, Searcher
from landmark_finder.core.whitening import Whitening
from landmark_finder.errors import IndexVersionError, LandmarkIndexError
from landmark_finder.recognition.calibration import CalibrationReport, fit_model
from landmark_finder.recognition.verified_fit import fit_verified
from landmark_finder.verify.keypoints import LocalConfig, LocalStore
from landmark_finder.verify.matching import VerifiedModel, VerifyConfig

FORMAT_VERSION = 1


@dataclass
class PhotoRecord:
    landmark_id: str
    path: str
    sha256: str


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
    local: LocalStore | None = None  # keypoints per gallery row, when verification is on
    verified: VerifiedModel | None = None  # how verified queries are scored and calibrated
    views: np.ndarray | None = None  # (N, V-1, D) descriptors of each photo's other views
    negatives: np.ndarray | None = None  # built-in non-landmark descriptors for calibration
    _searcher: Searcher | None = field(default=None, repr=False)
    _ann_path: Path | None = field(default=None, repr=False)

    # -- derived views -------------------------------------------------------------------

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
            grid = self.project(self.grid())
            vecs = grid.reshape(-1, grid.shape[-1])  # photo i's views are rows i*V .. i*V+V-1
            kind = "approximate" if self.approximate else "exact"
            self._searcher = SEARCHES.get(kind)(vecs, self._ann_path)
        return self._searcher

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
        )
        self.calibration_report = report.to_dict()
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
            )
        self._searcher = None
        self._ann_path = None
        return report

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

    # -- persistence ---------------------------------------------------------------------

    def save(self, root: Path) -> Path:
        """Write a new version under ``root`` and make it current atomically."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise LandmarkIndexError(f"{root}: exists and is not an index directory")
        root.mkdir(parents=True, exist_ok=True)
        version = Path(tempfile.mkdtemp(prefix=f"v-{time.strftime('%Y%m%dT%H%M%S')}-", dir=root))
        try:
            np.save(version / "descriptors.npy", self.descriptors.astype(np.float32))
            if self.views is not None:
                np.save(version / "views.npy", self.views.astype(np.float32))
            if self.distractors is not None:
                np.save(version / "distractors.npy", self.distractors.astype(np.float32))
            if self.negatives is not None:
                np.save(version / "negatives.npy", self.negatives.astype(np.float32))
            if self.whitening is not None:
                np.savez(
                    version / "whitening.npz",
                    mean=self.whitening.mean,
                    projection=self.whitening.projection,
                )
            if self.local is not None:
                self.local.save(version)
            if self.approximate:
                s = self.searcher
                assert isinstance(s, ApproximateSearch)
                s.write(version / "ann.faiss")
            with open(version / "records.csv", "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["row", "landmark_id", "path", "sha256"])
                for i, r in enumerate(self.records):
                    w.writerow([i, r.landmark_id, r.path, r.sha256])
            save_catalog(self.catalog, version / "catalog.csv")
            meta = {
                "format_version": FORMAT_VERSION,
                "backbone": self.backbone,
                "weights_hash": self.weights_hash,
                "preprocessing": self.preprocessing.to_dict(),
                "calibrator": self.calibrator.to_dict(),
                "calibration_report": self.calibration_report,
                "whiten": self.whiten,
                "whitening": self.whitening is not None,
                "approximate": self.approximate,
                "local": self.local.config.to_dict() if self.local is not None else None,
                "verification": self.verified.to_dict() if self.verified is not None else None,
                "n_photos": len(self.records),
                "n_landmarks": len(self.landmark_ids),
                "created": self.created or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (version / "meta.json").write_text(
                json.dumps(meta, indent=2, ensure_ascii=False), "utf-8"
            )
            _fsync_tree(version)
            write_text_atomic(root / "CURRENT", version.name + "\n")
        except BaseException:
            shutil.rmtree(version, ignore_errors=True)
            raise
        for old in root.glob("v-*"):  # previous versions and debris of interrupted writes
            if old.is_dir() and old.name != version.name:
                shutil.rmtree(old, ignore_errors=True)
        return version

    @classmethod
    def open(cls, root: Path) -> Index:
        root = Path(root)
        current = root / "CURRENT"
        if not current.is_file():
            raise LandmarkIndexError(
                f"{root}: not a landmark-finder index (no CURRENT file); "
                "build one with `landmark-finder index build`"
            )
        version = root / current.read_text("utf-8").strip()
        try:
            meta = json.loads((version / "meta.json").read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise LandmarkIndexError(f"{root}: index metadata unreadable ({e})") from None
        fv = meta.get("format_version")
        if not isinstance(fv, int) or fv > FORMAT_VERSION:
            raise IndexVersionError(
                f"{root}: index format {fv} is newer than this landmark-finder supports "
                f"({FORMAT_VERSION}); upgrade landmark-finder or rebuild the index"
            )
        try:
            desc = np.load(version / "descriptors.npy", allow_pickle=False)
            with open(version / "records.csv", newline="", encoding="utf-8") as f:
                records = [
                    PhotoRecord(r["landmark_id"], r["path"], r["sha256"]) for r in csv.DictReader(f)
                ]
            whitening = None
            if meta.get("whitening"):
                with np.load(version / "whitening.npz", allow_pickle=False) as z:
                    whitening = Whitening(z["mean"], z["projection"])
            vpath = version / "views.npy"
            views = np.load(vpath, allow_pickle=False) if vpath.exists() else None
            dpath = version / "distractors.npy"
            distractors = np.load(dpath, allow_pickle=False) if dpath.exists() else None
            npath = version / "negatives.npy"
            negatives = np.load(npath, allow_pickle=False) if npath.exists() else None
            catalog = load_catalog(version / "catalog.csv")
            local = (
                LocalStore.load(version, LocalConfig.from_dict(meta["local"]))
                if meta.get("local")
                else None
            )
            verified = (
                VerifiedModel.from_dict(meta["verification"])
                if local is not None and meta.get("verification")
                else None
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise LandmarkIndexError(
                f"{root}: index data unreadable ({e}); rebuild the index"
            ) from None
        if views is not None and (views.ndim != 3 or len(views) != len(desc)):
            raise LandmarkIndexError(
                f"{root}: views do not match the descriptors; rebuild the index"
            )
        if len(records) != len(desc) or (local is not None and len(local) != len(desc)):
            raise LandmarkIndexError(
                f"{root}: {len(records)} records but {len(desc)} descriptors"
                f"{f' and {len(local)} local feature sets' if local is not None else ''}; rebuild"
            )
        idx = cls(
            backbone=meta["backbone"],
            weights_hash=meta["weights_hash"],
            preprocessing=Preprocessing.from_dict(meta["preprocessing"]),
            descriptors=desc,
            records=records,
            catalog=catalog,
            calibrator=Calibrator.from_dict(meta["calibrator"]),
            whitening=whitening,
            distractors=distractors,
            approximate=bool(meta.get("approximate")),
            whiten=bool(meta.get("whiten", True)),
            calibration_report=meta.get("calibration_report", {}),
            created=meta.get("created", ""),
            local=local,
            verified=verified,
            views=views,
            negatives=negatives,
        )
        idx._ann_path = version / "ann.faiss"
        return idx


def _fsync_tree(d: Path) -> None:
    for p in d.iterdir():
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(d)

"""The library API every shell (CLI, web, GUI) calls: photo in, decision out.

>>> rec = Recognizer.open("my-index")
>>> r = rec.recognize("IMG_0042.HEIC")
>>> r.status, r.landmark.name, r.confidence
('recognized', 'Taj Mahal', 0.98)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from landmark_finder import defaults
from landmark_finder.core.catalog import Landmark
from landmark_finder.core.decision import SHORTLIST, aggregate
from landmark_finder.core.descriptors import Extractor, Runtime
from landmark_finder.core.images import ImageLoadError, load_image
from landmark_finder.errors import WeightsMismatchError
from landmark_finder.recognition.index import Index, LandmarkIndexError
from landmark_finder.verify.keypoints import LocalFeatures, extract
from landmark_finder.verify.matching import (
    Matcher,
    PairMatch,
    VerifyConfig,
    rerank,
    verified_features,
    verify_top,
)


@dataclass
class Candidate:
    landmark: Landmark
    score: float  # aggregated cosine similarity of its best reference photos (+ inlier bonus)
    reference: str  # path of its most similar reference photo (most inliers, when verified)
    inliers: int | None = None  # geometric verification; None when this one was not verified

    def to_dict(self) -> dict:
        return {
            "id": self.landmark.id,
            "name": self.landmark.name,
            "score": round(self.score, 4),
            "inliers": self.inliers,
        }


@dataclass
class Evidence:
    """Why the top candidate: its best reference photo and how well it matches."""

    reference_image: str
    global_similarity: float  # cosine similarity of the two photos' descriptors
    inliers: int | None = None  # geometrically consistent keypoint matches; None: not verified
    match: PairMatch | None = None  # the inlier positions, for drawing

    def to_dict(self) -> dict:
        return {
            "reference_image": self.reference_image,
            "inliers": self.inliers,
            "global_similarity": round(float(self.global_similarity), 4),
        }


@dataclass
class Recognition:
    image: str
    status: str  # "recognized" | "unknown" | "error"
    landmark: Landmark | None = None
    confidence: float = 0.0
    candidates: list[Candidate] = field(default_factory=list)
    error: str | None = None
    elapsed_ms: float = 0.0
    evidence: Evidence | None = None
    verified: bool = False

    def to_dict(self) -> dict:
        lm = self.landmark
        return {
            "image": self.image,
            "status": self.status,
            "landmark": None
            if lm is None
            else {
                "id": lm.id,
                "name": lm.name,
                "address": lm.address,
                "latitude": lm.latitude,
                "longitude": lm.longitude,
            },
            "confidence": round(float(self.confidence), 4),
            "candidates": [c.to_dict() for c in self.candidates],
            "evidence": None if self.evidence is None else self.evidence.to_dict(),
            "verified": self.verified,
            "error": self.error,
        }


def extractor_for(index: Index, runtime: Runtime = "auto", threads: int | None = None) -> Extractor:
    """An extractor matching the index, or a clear error when the model is not the same.

    When the index's model is already in the ONNX cache (keyed by its weights hash) it is used
    directly, without importing PyTorch: that is most of a cold start. ``threads``: the
    network's threads (one per worker when several processes share the CPU).
    """
    if runtime in ("auto", "onnx"):
        cached = Extractor.cached(index.backbone, index.weights_hash, index.preprocessing, threads)
        if cached is not None:
            return cached
    ex = Extractor.create(index.backbone, index.preprocessing, runtime=runtime, threads=threads)
    if ex.weights_hash != index.weights_hash:
        raise WeightsMismatchError(
            f"the index was built with {index.backbone} weights {index.weights_hash[:12]}, "
            f"but the installed {ex.backbone_name} weights are {ex.weights_hash[:12]}; "
            "rebuild the index with `landmark-finder index build`"
        )
    return ex


def _single_threaded_blas() -> None:
    """Per-query linear algebra (whitening a vector, one row of similarities) is tiny; waking
    OpenBLAS's thread pool for it costs more than it saves — measured 0.8 ms single-threaded
    against 21 ms threaded for the 1280×1024 whitening while other work loaded both cores.
    ONNX Runtime keeps its own threads for the network."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


class Recognizer:
    """Holds an index and the matching descriptor extractor; thread-safe for reads.

    ``verify`` (default: whenever the index has local features) re-ranks the top landmarks by
    geometric verification; ``verify_landmarks`` overrides how many are verified.
    """

    def __init__(
        self,
        index: Index,
        extractor: Extractor,
        verify: bool | None = None,
        verify_landmarks: int | None = None,
    ):
        _single_threaded_blas()
        self.index = index
        self.extractor = extractor
        can = index.local is not None and index.verified is not None
        if verify and not can:
            raise LandmarkIndexError(
                "this index has no local features for geometric verification; "
                "rebuild it with `landmark-finder index build` (SIFT is the default)"
            )
        self.verify = can if verify is None else bool(verify)
        cfg = index.verified.config if index.verified is not None else VerifyConfig()
        if verify_landmarks is not None:
            if verify_landmarks < 1:
                raise ValueError("verify_landmarks must be at least 1")
            cfg = VerifyConfig(verify_landmarks, cfg.refs, cfg.ratio)
        self.verify_config = cfg
        self._labels = index.row_labels()
        self._ids = index.landmark_ids
        self._counts = np.bincount(self._labels, minlength=len(self._ids))
        _ = index.searcher  # build/load the search structure now, not on the first query

    @classmethod
    def open(
        cls,
        path: str | Path,
        backbone: str | None = None,
        runtime: Runtime = "auto",
        verify: bool | None = None,
        verify_landmarks: int | None = None,
    ) -> Recognizer:
        """Open an index. ``backbone``, when given, must be the one the index was built with."""
        index = Index.open(Path(path))
        if backbone is not None and backbone != index.backbone:
            raise LandmarkIndexError(
                f"{path}: index was built with backbone {index.backbone!r}, not {backbone!r}; "
                "descriptors of different backbones cannot be compared"
            )
        return cls(index, extractor_for(index, runtime), verify, verify_landmarks)

    @property
    def load_side(self) -> int:
        """Long side photos are decoded at: the descriptor's size, or the keypoints' if larger."""
        pre = self.extractor.preprocessing
        side = int(pre.size * max(pre.scales))
        return max(side, self.index.local.config.side) if self.verify and self.index.local else side

    def describe(self, image: Image.Image) -> np.ndarray:
        return self.index.project(self.extractor.describe(image))

    def local_features(self, image: Image.Image) -> LocalFeatures | None:
        """The photo's keypoints when this recognizer verifies, else None."""
        if not self.verify or self.index.local is None:
            return None
        return extract(image, self.index.local.config)

    def decide(
        self,
        descriptor: np.ndarray,
        image: str = "",
        top_k: int = defaults.TOP_K,
        local: LocalFeatures | None = None,
    ) -> Recognition:
        """Decision for an already projected descriptor (verified when ``local`` is given)."""
        sims, rows = self.index.searcher.search(descriptor[None], SHORTLIST)
        sims, rows = sims[0], rows[0]
        ls = aggregate(sims, rows, self._labels, self._counts)
        calibrator, feats, matches = self.index.calibrator, None, {}
        verified = local is not None and self.verify and len(ls.labels) > 0
        if verified:
            vm = self.index.verified
            v = verify_top(
                sims,
                rows,
                self._labels,
                ls,
                Matcher(local, self.index.local, self.verify_config.ratio),
                self.verify_config,
            )
            matches = {int(lab): m for lab, m in zip(v.labels, v.matches, strict=False)}
            ls = rerank(ls, v, vm.fusion)
            calibrator, feats = vm.calibrator, verified_features(ls, vm.chance_inliers)
        cands = [
            Candidate(
                self.index.catalog[self._ids[lab]],
                float(s),
                self.index.records[row].path,
                int(ls.inliers[i]) if int(lab) in matches else None,
            )
            for i, (lab, s, row) in enumerate(
                zip(ls.labels[:top_k], ls.scores[:top_k], ls.best_rows[:top_k], strict=False)
            )
        ]
        if feats is None:
            feats = ls.features()
        conf = float(calibrator.confidence(feats)) if cands else 0.0
        ok = bool(cands) and conf >= self.index.calibrator.threshold
        r = Recognition(
            image,
            "recognized" if ok else "unknown",
            cands[0].landmark if ok else None,
            conf,
            cands,
            verified=verified,
        )
        if cands:
            row = int(ls.best_rows[0])
            hit = np.flatnonzero(rows == row)
            sim = (
                float(sims[hit[0]])
                if len(hit)
                else float(self.index.project(self.index.descriptors[row][None])[0] @ descriptor)
            )
            m = matches.get(int(ls.labels[0]))
            r.evidence = Evidence(cands[0].reference, sim, m.inliers if m else None, m)
        return r

    def recognize(
        self,
        source: str | Path | bytes | BinaryIO | Image.Image,
        top_k: int = defaults.TOP_K,
        name: str | None = None,
    ) -> Recognition:
        """Recognize one photo. Bad input gives ``status="error"`` with a one-line reason."""
        label = name or (str(source) if isinstance(source, (str, Path)) else "<upload>")
        t0 = time.perf_counter()
        try:
            if isinstance(source, Image.Image):
                img = source.convert("RGB")
            else:
                img = load_image(source, max_side=self.load_side, name=name)
        except ImageLoadError as e:
            return Recognition(label, "error", error=str(e))
        r = self.decide(self.describe(img), label, top_k, self.local_features(img))
        r.elapsed_ms = (time.perf_counter() - t0) * 1000
        return r

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

from .catalog import Landmark
from .decision import SHORTLIST, aggregate
from .descriptors import Extractor, Runtime
from .images import ImageLoadError, load_image
from .index import Index, IndexError_


@dataclass
class Candidate:
    landmark: Landmark
    score: float  # aggregated cosine similarity of the landmark's best reference photos
    reference: str  # path of its most similar reference photo

    def to_dict(self) -> dict:
        return {"id": self.landmark.id, "name": self.landmark.name, "score": round(self.score, 4)}


@dataclass
class Recognition:
    image: str
    status: str  # "recognized" | "unknown" | "error"
    landmark: Landmark | None = None
    confidence: float = 0.0
    candidates: list[Candidate] = field(default_factory=list)
    error: str | None = None
    elapsed_ms: float = 0.0

    def to_dict(self) -> dict:
        lm = self.landmark
        return {
            "image": self.image,
            "status": self.status,
            "landmark": None if lm is None else {
                "id": lm.id, "name": lm.name, "address": lm.address,
                "latitude": lm.latitude, "longitude": lm.longitude},
            "confidence": round(float(self.confidence), 4),
            "candidates": [c.to_dict() for c in self.candidates],
            "error": self.error,
        }


def extractor_for(index: Index, runtime: Runtime = "auto") -> Extractor:
    """An extractor matching the index, or a clear error when the model is not the same."""
    ex = Extractor.create(index.backbone, index.preprocessing, runtime=runtime)
    if ex.weights_hash != index.weights_hash:
        raise IndexError_(
            f"the index was built with {index.backbone} weights {index.weights_hash[:12]}, "
            f"but the installed {ex.backbone_name} weights are {ex.weights_hash[:12]}; "
            "rebuild the index with `landmark-finder index build`")
    return ex


def _single_threaded_blas() -> None:
    """Per-query linear algebra (whitening a vector, one row of similarities) is tiny; waking
    OpenBLAS's thread pool for it costs more than it saves — measured 0.8 ms single-threaded
    against 21 ms threaded for the 1280×1024 whitening while other work loaded both cores.
    ONNX Runtime keeps its own threads for the network."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


class Recognizer:
    """Holds an index and the matching descriptor extractor; thread-safe for reads."""

    def __init__(self, index: Index, extractor: Extractor):
        _single_threaded_blas()
        self.index = index
        self.extractor = extractor
        self._labels = index.row_labels()
        self._ids = index.landmark_ids
        self._counts = np.bincount(self._labels, minlength=len(self._ids))
        index.searcher  # build/load the search structure now, not on the first query

    @classmethod
    def open(cls, path: str | Path, backbone: str | None = None, runtime: Runtime = "auto"
             ) -> "Recognizer":
        """Open an index. ``backbone``, when given, must be the one the index was built with."""
        index = Index.open(Path(path))
        if backbone is not None and backbone != index.backbone:
            raise IndexError_(
                f"{path}: index was built with backbone {index.backbone!r}, not {backbone!r}; "
                "descriptors of different backbones cannot be compared")
        return cls(index, extractor_for(index, runtime))

    def describe(self, image: Image.Image) -> np.ndarray:
        return self.index.project(self.extractor.describe(image))

    def decide(self, descriptor: np.ndarray, image: str = "", top_k: int = 5) -> Recognition:
        """Decision for an already projected descriptor."""
        sims, rows = self.index.searcher.search(descriptor[None], SHORTLIST)
        ls = aggregate(sims[0], rows[0], self._labels, self._counts)
        cands = [
            Candidate(self.index.catalog[self._ids[lab]], float(s), self.index.records[row].path)
            for lab, s, row in zip(ls.labels[:top_k], ls.scores[:top_k], ls.best_rows[:top_k])
        ]
        conf = float(self.index.calibrator.confidence(ls.features())) if cands else 0.0
        ok = bool(cands) and conf >= self.index.calibrator.threshold
        return Recognition(image, "recognized" if ok else "unknown",
                           cands[0].landmark if ok else None, conf, cands)

    def recognize(
        self, source: str | Path | bytes | BinaryIO | Image.Image, top_k: int = 5,
        name: str | None = None,
    ) -> Recognition:
        """Recognize one photo. Bad input gives ``status="error"`` with a one-line reason."""
        label = name or (str(source) if isinstance(source, (str, Path)) else "<upload>")
        t0 = time.perf_counter()
        try:
            if isinstance(source, Image.Image):
                img = source.convert("RGB")
            else:
                pre = self.extractor.preprocessing
                img = load_image(source, max_side=int(pre.size * max(pre.scales)), name=name)
        except ImageLoadError as e:
            return Recognition(label, "error", error=str(e))
        r = self.decide(self.describe(img), label, top_k)
        r.elapsed_ms = (time.perf_counter() - t0) * 1000
        return r

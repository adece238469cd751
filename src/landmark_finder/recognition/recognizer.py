"""The library API every shell (CLI, web, GUI) calls: photo in, decision out.

>>> rec = Recognizer.open("my-index")
>>> r = rec.recognize("IMG_0042.HEIC")
>>> r.status, r.landmark.name, r.confidence
('recognized', 'Taj Mahal', 0.98)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from landmark_finder import defaults
from landmark_finder.core.content import content_problem
from landmark_finder.core.decision import SHORTLIST, LandmarkScores, aggregate
from landmark_finder.core.descriptors import Extractor, Runtime
from landmark_finder.core.images import ImageLoadError, load_image
from landmark_finder.core.search import CompressedSearch
from landmark_finder.core.sites import NO_SITE, SiteAnswer, merge_site
from landmark_finder.core.views import MIN_CROP_FRACTION, photo_hits, search_views
from landmark_finder.errors import WeightsMismatchError
from landmark_finder.recognition.answers import Candidate, Evidence, Recognition
from landmark_finder.recognition.calibration import global_features
from landmark_finder.recognition.index import Index, LandmarkIndexError
from landmark_finder.verify.keypoints import LocalFeatures, extract
from landmark_finder.verify.matching import (
    Matcher,
    VerifyConfig,
    rerank,
    verified_features,
    verify_top,
)

log = logging.getLogger(__name__)


#: Queries may be decoded down to this share of ``load_side`` when a JPEG then decodes at a
#: smaller DCT scale: a 12-Mpx photo (4000 px) at 1/8 = 500 px instead of 1/4 and a resize
#: to 512 px. Photos this small are not affected; 0.9 keeps query SIFT within 10 % of 512 px.
QUERY_DRAFT_SLACK = 0.9


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
    geometric verification; ``verify_landmarks`` overrides how many are verified. Verification
    is skipped when the global answer is already certain (the index's fitted ``SkipRule``)
    unless ``always_verify`` (default: ``defaults.ALWAYS_VERIFY``).
    """

    def __init__(
        self,
        index: Index,
        extractor: Extractor,
        verify: bool | None = None,
        verify_landmarks: int | None = None,
        always_verify: bool = defaults.ALWAYS_VERIFY,
    ):
        _single_threaded_blas()
        self.always_verify = always_verify
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
        self._sites = index.sites()
        self._site_names = {lm.id: lm.site for lm in index.catalog}
        _ = index.searcher  # build/load the search structure now, not on the first query

    @classmethod
    def open(
        cls,
        path: str | Path,
        backbone: str | None = None,
        runtime: Runtime = "auto",
        verify: bool | None = None,
        verify_landmarks: int | None = None,
        threads: int | None = None,
        always_verify: bool = defaults.ALWAYS_VERIFY,
    ) -> Recognizer:
        """Open an index. ``backbone``, when given, must be the one the index was built with."""
        index = Index.open(Path(path))
        if backbone is not None and backbone != index.backbone:
            raise LandmarkIndexError(
                f"{path}: index was built with backbone {index.backbone!r}, not {backbone!r}; "
                "descriptors of different backbones cannot be compared"
            )
        return cls(
            index, extractor_for(index, runtime, threads), verify, verify_landmarks, always_verify
        )

    @property
    def load_side(self) -> int:
        """Long side photos are decoded at: the descriptor's size, or the keypoints' if larger."""
        pre = self.extractor.preprocessing
        side = int(pre.size * max(pre.scales))
        if pre.n_views > 1:  # crops are described at the full input size too
            side = int(round(side / MIN_CROP_FRACTION))
        return max(side, self.index.local.config.side) if self.verify and self.index.local else side

    def describe(self, image: Image.Image) -> np.ndarray:
        """Projected descriptor of the whole photo, (d,)."""
        return self.index.project(self.extractor.describe(image))

    def describe_views(self, image: Image.Image) -> np.ndarray:
        """Projected descriptors of every view the index uses, (V, d); row 0 is ``describe``."""
        return self.index.project(self.extractor.describe_views(image))

    def local_features(self, image: Image.Image) -> LocalFeatures | None:
        """The photo's keypoints when this recognizer verifies, else None."""
        if not self.verify or self.index.local is None:
            return None
        return extract(image, self.index.local.config, query=True)

    def decide(
        self,
        descriptor: np.ndarray,
        image: str = "",
        top_k: int = defaults.TOP_K,
        local: LocalFeatures | Callable[[], LocalFeatures | None] | None = None,
        searched: tuple[np.ndarray, np.ndarray] | None = None,
        always_verify: bool = False,
    ) -> Recognition:
        """Decision for an already projected descriptor (d,) or views (V, d) (verified when
        ``local`` is given, even when the global answer looks certain with ``always_verify``).
        A reference's similarity is that of its best pair of views.

        ``local`` may be a function computing the query's keypoints: it is only called when
        verification runs, so a certain global answer costs no keypoint extraction.
        ``searched``: the descriptor's search results (similarities, photo rows), when
        already made (:meth:`decide_each`)."""
        tm: dict[str, float] = {}
        t0 = time.perf_counter()
        if searched is None:
            searched = search_views(self.index.searcher, descriptor, self.index.n_views, SHORTLIST)
        sims, rows = searched
        ls = aggregate(sims, rows, self._labels, self._counts)
        calibrator, matches = self.index.calibrator, {}
        verified = local is not None and self.verify and len(ls.labels) > 0
        vm = self.index.verified
        skipped = False
        if verified and not (self.always_verify or always_verify):
            g = float(calibrator.confidence(global_features(ls, self._sites)))
            skipped = vm.skip.skips(g, calibrator.threshold)
            verified = not skipped
        t1 = time.perf_counter()
        tm["search"] = (t1 - t0) * 1000
        if verified and callable(local):
            local = local()
            t2 = time.perf_counter()
            tm["keypoints"], t1 = (t2 - t1) * 1000, t2
            verified = local is not None
        if verified:
            v = verify_top(
                sims,
                rows,
                self._labels,
                ls,
                Matcher(local, self.index.local, self.verify_config.ratio),
                self.verify_config,
            )
            matches = {int(lab): m for lab, m in zip(v.labels, v.matches, strict=True)}
            ls = rerank(ls, v, vm.fusion)
            calibrator = vm.calibrator
            t2 = time.perf_counter()
            tm["matching"], t1 = (t2 - t1) * 1000, t2

            def features(x: LandmarkScores) -> np.ndarray:
                return verified_features(x, vm.chance_inliers, self._sites)
        else:

            def features(x: LandmarkScores) -> np.ndarray:
                return global_features(x, self._sites)

        cands = [
            Candidate(
                self.index.catalog[self._ids[lab]],
                float(s),
                self.index.records[row].path,
                int(ls.inliers[i]) if int(lab) in matches else None,
            )
            for i, (lab, s, row) in enumerate(
                zip(ls.labels[:top_k], ls.scores[:top_k], ls.best_rows[:top_k], strict=True)
            )
        ]
        threshold = self.index.calibrator.threshold
        conf = float(calibrator.confidence(features(ls))) if cands else 0.0
        site = self._site(ls, calibrator, features) if cands else None
        if site is not None:  # the site is right whenever its top member is
            site.confidence = max(site.confidence, conf)
        status = "unknown"
        if cands and conf >= threshold:
            status = "recognized"
        elif site is not None and site.confidence >= threshold:
            status = "site"  # sure of the site, not of which member: name the site
        r = Recognition(
            image,
            status,
            cands[0].landmark if status != "unknown" else None,
            conf,
            cands,
            verified=verified,
            site=site,
            verification_skipped=skipped,
            timings=tm,
            matches={self._ids[lab]: m for lab, m in matches.items()},
        )
        if status == "unknown":
            r.reason = (
                f"no landmark matched confidently (confidence {conf:.2f} below {threshold:g})"
                if cands
                else "the index has no reference photos to compare with"
            )
        if cands:
            row = int(ls.best_rows[0])
            hit = np.flatnonzero(rows == row)
            sim = (
                float(sims[hit[0]])
                if len(hit)
                else float(
                    (
                        self.index.project(self.index.grid(np.array([row])))[0]
                        @ np.atleast_2d(descriptor).T
                    ).max()
                )
            )
            m = matches.get(int(ls.labels[0]))
            top = np.flatnonzero(self._labels[rows] == ls.labels[0])[: self.verify_config.refs]
            refs = [(int(rows[i]), float(sims[i])) for i in top]
            r.evidence = Evidence(cands[0].reference, sim, m.inliers if m else None, m, refs)
        tm["decision"] = (time.perf_counter() - t1) * 1000
        return r

    def decide_each(
        self, descriptors: np.ndarray, candidates: int | None = None
    ) -> list[Recognition]:
        """Global decisions of many projected descriptors (N, d), as :meth:`decide` gives them
        one by one, searched as one batch (one matrix product for an exact search, one scan of
        the codes per 64 descriptors for a compressed one): the regions of a crowded photo.
        ``candidates``: a compressed search re-ranks this many scan candidates instead of its
        own count (descriptors that only propose; an exact search is unaffected)."""
        z = np.atleast_2d(np.asarray(descriptors, np.float32))
        if len(z) == 0:
            return []
        nv = max(self.index.n_views, 1)
        searcher = self.index.searcher
        if candidates is not None and isinstance(searcher, CompressedSearch):
            searcher = searcher.with_rerank(candidates)
        sims, ids = searcher.search(z, SHORTLIST * nv)
        return [
            self.decide(zi, searched=photo_hits(s, r, nv, SHORTLIST))
            for zi, s, r in zip(z, sims, ids, strict=True)
        ]

    def complete_evidence(self, image: Image.Image, r: Recognition) -> Recognition:
        """When verification was skipped, match ``image`` (decoded at :attr:`load_side`) with
        the references verification would have matched, so an evidence picture can still draw
        the matching keypoints: the evidence becomes the one with most inliers, as if verified.
        The answer and its confidence stay as they were; ``r`` is returned, completed."""
        ev = r.evidence
        if ev is None or ev.match is not None or not ev.refs or self.index.local is None:
            return r
        query = extract(image, self.index.local.config, query=True)
        matcher = Matcher(query, self.index.local, self.verify_config.ratio)  # as verify_top
        found = [(matcher(row), row, sim) for row, sim in ev.refs]
        ev.match, row, ev.global_similarity = max(found, key=lambda t: t[0].inliers)
        ev.inliers, ev.reference_image = ev.match.inliers, self.index.records[row].path
        return r

    def _site(self, ls: LandmarkScores, calibrator, features) -> SiteAnswer | None:
        """The top candidate's site scored as one place (margin to the best landmark outside
        it), with its members ranked; None when the top landmark stands alone."""
        if self._sites is None or self._sites[ls.labels[0]] == NO_SITE:
            return None
        site = int(self._sites[ls.labels[0]])
        members = [self._ids[lab] for lab in ls.labels if self._sites[lab] == site]
        members += [
            lid
            for lab, lid in enumerate(self._ids)
            if self._sites[lab] == site and lid not in members
        ]
        conf = float(calibrator.confidence(features(merge_site(ls, self._sites))))
        return SiteAnswer(self._site_names.get(members[0], ""), members, conf)

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
                img = load_image(
                    source, max_side=self.load_side, name=name, draft_slack=QUERY_DRAFT_SLACK
                )
        except ImageLoadError as e:
            return Recognition(label, "error", error=str(e))
        problem = content_problem(img)
        if problem is not None:  # blank, noise, tiny, transparent: no network, no guesses
            return Recognition(
                label, "unknown", reason=problem, elapsed_ms=(time.perf_counter() - t0) * 1000
            )
        try:
            t1 = time.perf_counter()
            desc = self.describe_views(img)
            t2 = time.perf_counter()
            r = self.decide(desc, label, top_k, lambda: self.local_features(img))
        except Exception as e:  # one photo must never end a batch or a server request
            log.debug("recognizing %s failed", label, exc_info=True)
            reason = " ".join(f"{type(e).__name__}: {e}".split())
            return Recognition(label, "error", error=f"{label}: cannot recognize ({reason})")
        r.timings = {"decode": (t1 - t0) * 1000, "network": (t2 - t1) * 1000, **r.timings}
        r.elapsed_ms = (time.perf_counter() - t0) * 1000
        return r

"""What the recognizer answers: the decision, its candidates and its evidence, as records.

Every shell shows these (``to_dict`` is the JSON of the CLI and the web API); they hold no
logic of their own beyond choosing names in the reader's language.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from landmark_finder.core.catalog import Landmark
from landmark_finder.core.sites import SiteAnswer
from landmark_finder.verify.matching import PairMatch


@dataclass
class Candidate:
    landmark: Landmark
    score: float  # aggregated cosine similarity of its best reference photos (+ inlier bonus)
    reference: str  # path of its most similar reference photo (most inliers, when verified)
    inliers: int | None = None  # geometric verification; None when this one was not verified

    def to_dict(self, lang: str | None = None) -> dict:
        """``lang``: name it for a reader of that language (default: the catalog's ``name``)."""
        return {
            "id": self.landmark.id,
            "name": self.landmark.name_in(lang),
            "names": dict(self.landmark.names),
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
    #: (row, similarity) of the references verification would match for this landmark, best
    #: first; how a skipped verification is completed for a picture (not in the JSON)
    refs: list[tuple[int, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "reference_image": self.reference_image,
            "inliers": self.inliers,
            "global_similarity": round(float(self.global_similarity), 4),
        }


@dataclass
class Recognition:
    image: str
    # "recognized" | "site" (one of ``site.members``, not which) | "unknown" | "error"
    status: str
    landmark: Landmark | None = None
    confidence: float = 0.0
    candidates: list[Candidate] = field(default_factory=list)
    error: str | None = None
    elapsed_ms: float = 0.0
    evidence: Evidence | None = None
    verified: bool = False
    site: SiteAnswer | None = None  # when the top candidate stands in a site with others
    reason: str | None = None  # why "unknown": a content check, or confidence below threshold
    #: verification was due but skipped: the global answer was already certain (SkipRule)
    verification_skipped: bool = False
    #: milliseconds per stage: decode, network, search, keypoints, matching, decision
    timings: dict[str, float] = field(default_factory=dict)
    #: verified landmarks' best matches (landmark id -> inliers with positions and reference
    #: row), for locating them in the photo; not part of the JSON
    matches: dict[str, PairMatch] = field(default_factory=dict)

    def to_dict(self, lang: str | None = None) -> dict:
        """JSON-ready; ``names`` carries every language the catalog has. ``lang``: ``name`` and
        ``address`` for a reader of that language (default: the catalog's own columns)."""
        lm = self.landmark.localized(lang) if self.landmark is not None else None
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
                "names": dict(lm.names),
            },
            "confidence": round(float(self.confidence), 4),
            "candidates": [c.to_dict(lang) for c in self.candidates],
            "evidence": None if self.evidence is None else self.evidence.to_dict(),
            "verified": self.verified,
            "site": None if self.site is None else self.site.to_dict(),
            "error": self.error,
            "reason": self.reason,
        }

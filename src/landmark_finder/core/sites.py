"""Sites: landmarks that stand together (the catalog's ``site`` column, e.g. the Qutb complex).

Photos of one member show the others (the Qutub Minar rises behind the Iron Pillar), so a
strong match to a neighbour is right about the pixels and wrong about the label. Two things
follow, both fitted and applied the same way at index time and at query time:

* the calibrator sees whether the runner-up is a neighbour in the same site (and, verified,
  how many inliers that neighbour got), so it learns not to be sure when a neighbour is close;
* a site is also scored as one place (its members merged): when the evidence cannot separate
  the members but clearly points at the site, the answer names the site and its members.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from landmark_finder.core.decision import LandmarkScores

NO_SITE = -1
#: How far down the ranking a neighbour counts as a rival of the top landmark.
RIVAL_DEPTH = 3


def site_ids(landmark_ids: Sequence[str], site_of: dict[str, str]) -> np.ndarray:
    """Site number per label (landmark order of the index); ``NO_SITE`` for landmarks alone in
    their site (a site with one member changes nothing)."""
    names = [site_of.get(lid, "") for lid in landmark_ids]
    counts: dict[str, int] = {}
    for n in names:
        if n:
            counts[n] = counts.get(n, 0) + 1
    shared = sorted(n for n, c in counts.items() if c > 1)
    pos = {n: i for i, n in enumerate(shared)}
    return np.array([pos.get(n, NO_SITE) for n in names], np.int64)


def rival(ls: LandmarkScores, sites: np.ndarray | None) -> int | None:
    """Position in ``ls`` of the best other member of the top landmark's site (top ranks only)."""
    if sites is None or len(ls.labels) < 2:
        return None
    s = sites[ls.labels[0]]
    if s == NO_SITE:
        return None
    for i in range(1, min(RIVAL_DEPTH, len(ls.labels))):
        if sites[ls.labels[i]] == s:
            return i
    return None


def rival_features(ls: LandmarkScores, sites: np.ndarray | None, chance: float = 0.0) -> list:
    """(a neighbour of the same site is a top rival: 0/1, log1p(its inliers beyond chance))."""
    i = rival(ls, sites)
    if i is None:
        return [0.0, 0.0]
    inl = float(ls.inliers[i]) if ls.inliers is not None else 0.0
    return [1.0, float(np.log1p(max(0.0, inl - chance)))]


def merge_site(ls: LandmarkScores, sites: np.ndarray | None) -> LandmarkScores:
    """The ranking with the top landmark's site as one place: its other members removed, so
    the margin is to the best landmark *outside* the site."""
    if sites is None or not len(ls.labels) or sites[ls.labels[0]] == NO_SITE:
        return ls
    keep = sites[ls.labels] != sites[ls.labels[0]]
    keep[0] = True
    return LandmarkScores(
        ls.labels[keep],
        ls.scores[keep],
        ls.best_rows[keep],
        None if ls.inliers is None else ls.inliers[keep],
    )


@dataclass
class SiteAnswer:
    """The answer at site level: one of ``members`` (ranked), with ``confidence``."""

    name: str
    members: list[str]
    confidence: float

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "members": self.members,
            "confidence": round(float(self.confidence), 4),
        }

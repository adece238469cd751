"""From nearest reference photos to a decision: which landmark, how sure, or "unknown".

Landmarks are scored, not single photos: a landmark's score is the mean similarity of its
``k`` most similar reference photos (k=3). One lucky look-alike photo of another landmark
then cannot outvote several good matches (top-1 0.919 → 0.940 against the single nearest
photo on the Indian-monuments benchmark).

The score is turned into a probability of being right by a small logistic model over two
features — the best landmark's score and its margin over the runner-up — fitted at index
time (see ``calibration``). Below ``threshold`` the answer is "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

AGGREGATE_K = 3
#: Neighbours retrieved per query before aggregation; enough for k=3 of the top landmarks.
SHORTLIST = 200


@dataclass
class LandmarkScores:
    """Per-query landmark ranking: ``labels[i]`` scored ``scores[i]``, best first.

    ``best_rows[i]`` is the gallery row of the most similar reference photo of that landmark;
    after geometric verification, of the one with the most inliers (``inliers[i]``).
    """

    labels: np.ndarray
    scores: np.ndarray
    best_rows: np.ndarray
    inliers: np.ndarray | None = None  # set by verification.rerank

    def features(self) -> np.ndarray:
        """(s1, s1 - s2): evidence strength and how clearly it beats the runner-up."""
        s1 = float(self.scores[0]) if len(self.scores) else 0.0
        s2 = float(self.scores[1]) if len(self.scores) > 1 else 0.0
        return np.array([s1, s1 - s2], np.float64)


def aggregate(
    sims: np.ndarray,
    rows: np.ndarray,
    row_labels: np.ndarray,
    label_counts: np.ndarray,
    k: int = AGGREGATE_K,
    exclude: int | None = None,
) -> LandmarkScores:
    """Score landmarks from one query's retrieved neighbours (``sims`` descending).

    A landmark with fewer than ``k`` reference photos uses all it has. When the shortlist did
    not reach all of a landmark's top-``k`` photos, the missing ones are bounded by the last
    retrieved similarity, so scores stay comparable. ``exclude`` drops one landmark entirely
    (calibration uses it to simulate a photo of a landmark the gallery does not know).
    """
    labs = row_labels[rows]
    if exclude is not None:
        keep = labs != exclude
        sims, rows, labs = sims[keep], rows[keep], labs[keep]
    if len(sims) == 0:
        return LandmarkScores(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64))
    # Group the (descending) shortlist by landmark, keeping order inside each group, so the
    # first k entries of a group are that landmark's k best photos. Vectorised: this runs
    # once per query and twice per gallery photo during calibration.
    order = np.argsort(labs, kind="stable")
    g_labs, g_sims = labs[order], sims[order]
    uniq, start, n_found = np.unique(g_labs, return_index=True, return_counts=True)
    rank = np.arange(len(g_labs)) - np.repeat(start, n_found)
    top = rank < k
    sums = np.bincount(np.searchsorted(uniq, g_labs[top]), weights=g_sims[top], minlength=len(uniq))
    need = np.minimum(k, label_counts[uniq])
    got = np.minimum(n_found, need)
    # missing photos of a landmark's top-k (beyond the shortlist) are bounded by its last entry
    scores = ((sums + (need - got) * float(sims[-1])) / need).astype(np.float32)
    best = rows[order][start]
    rank_order = np.argsort(-scores, kind="stable")
    return LandmarkScores(uniq[rank_order], scores[rank_order], best[rank_order])


@dataclass
class Calibrator:
    """P(answer is right) = sigmoid(w · features + b); answers below ``threshold`` are unknown.

    Stored as plain numbers in the index's JSON metadata: no pickled estimator.
    """

    weights: list[float] = field(default_factory=lambda: [20.0, 20.0])
    bias: float = -14.0
    threshold: float = 0.5

    def confidence(self, feats: np.ndarray) -> np.ndarray | float:
        # Features beyond the model's (site features, for an index fitted without sites) are
        # ignored, so indexes written before a feature existed keep working.
        f = np.asarray(feats, np.float64)[..., : len(self.weights)]
        z = f @ np.asarray(self.weights) + self.bias
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        return float(p) if np.ndim(p) == 0 else p

    def to_dict(self) -> dict:
        return {
            "weights": list(map(float, self.weights)),
            "bias": float(self.bias),
            "threshold": float(self.threshold),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Calibrator:
        return cls([float(w) for w in d["weights"]], float(d["bias"]), float(d["threshold"]))

"""Which of the searched crops is the landmark's box: a small learned ranking.

The dense search (:mod:`landmark_finder.explain.locate`) scores a few dozen crops of the photo
by their similarity to the landmark's references. The most similar crop is often a close-up of
the landmark's most distinctive part, because galleries hold close-ups too: on 50 composites of
held-out photos (the landmark given) the best-scoring box, widened over near-ties, had IoU >= 0.5
with the pasted photo in 41 of them, while one of the crops already scored did in 48.

What tells the whole landmark from its core is a combination of cues: how far its similarity
is below the best one, how much of the evidence map it holds, its size against the best crop's,
its shape and whether it touches the photo's edges. Gradient-boosted trees learn that
combination from composites of the gallery's own photos (each pasted into a photo of no
landmark and searched with its own references left out, so nothing of a test photo is seen);
the crop with the highest predicted IoU is the box. The trees are stored as plain arrays
(``.npz``, no pickle) and evaluated with NumPy, so scikit-learn is needed only to fit them.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landmark_finder.core.atomic import write_bytes_atomic

BoxF = tuple[float, float, float, float]

#: The ranking that ships with the package, fitted by ``bench/fit_box_ranker.py``.
DEFAULT_PATH = Path(__file__).parent / "data" / "box_ranker.npz"
#: What each column of :func:`features` is (stored with a fitted ranking and checked on load).
FEATURES = (
    "score - best score",
    "score / best score",
    "log area share",
    "log area / best crop's area",
    "evidence mass inside",
    "evidence mass / area share",
    "IoU with the best crop",
    "log aspect / photo's aspect",
    "photo edges touched",
    "evidence mass in a ring 15 % of the crop's size around it",
    "|x offset of the evidence's centre| / width",
    "|y offset of the evidence's centre| / height",
)


def features(
    boxes: Sequence[BoxF],
    scores: Sequence[float],
    ev: np.ndarray,
    size: tuple[int, int],
    cell: int,
) -> np.ndarray:
    """(N, len(FEATURES)) cues of the crops ``boxes`` (pixels of a ``size`` = (w, h) photo)
    with their similarity ``scores``; ``ev`` is the evidence map (cells of ``cell`` pixels,
    summing to 1)."""
    from landmark_finder.explain.composites import iou

    w, h = size
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64)
    j = int(np.argmax(s))
    smax = float(s[j])
    area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) / (w * h), 1e-4)
    integral = np.pad(np.asarray(ev, np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    gh, gw = ev.shape

    def mass(bb: np.ndarray) -> np.ndarray:
        x0 = np.clip(bb[:, 0] // cell, 0, gw).astype(int)
        y0 = np.clip(bb[:, 1] // cell, 0, gh).astype(int)
        x1 = np.clip(np.ceil(bb[:, 2] / cell), 0, gw).astype(int)
        y1 = np.clip(np.ceil(bb[:, 3] / cell), 0, gh).astype(int)
        return integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]

    inside = mass(b)
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    grown = b + np.stack([-bw, -bh, bw, bh], 1) * 0.15
    ring = mass(np.clip(grown, 0, [w, h, w, h])) - inside
    total = max(float(ev.sum()), 1e-12)
    ys, xs = (np.arange(n) * cell + cell / 2 for n in ev.shape)
    cx = float((ev.sum(0) * xs).sum() / total)
    cy = float((ev.sum(1) * ys).sum() / total)
    top = tuple(b[j])
    aspect = np.log((b[:, 2] - b[:, 0] + 1) / (b[:, 3] - b[:, 1] + 1)) - np.log(w / h)
    edges = (b[:, 0] <= 1).astype(int) + (b[:, 1] <= 1) + (b[:, 2] >= w - 1) + (b[:, 3] >= h - 1)
    return np.stack(
        [
            s - smax,
            s / max(smax, 1e-3),
            np.log(area),
            np.log(area / area[j]),
            inside,
            inside / area,
            np.array([iou(tuple(x), top) for x in b]),
            aspect,
            edges.astype(np.float64),
            ring,
            np.abs((b[:, 0] + b[:, 2]) / 2 - cx) / np.maximum(bw, 1),
            np.abs((b[:, 1] + b[:, 3]) / 2 - cy) / np.maximum(bh, 1),
        ],
        1,
    )


@dataclass(frozen=True)
class BoxRanker:
    """Regression trees summed (gradient boosting): predicted IoU of a crop with the landmark.

    Nodes of all trees in flat arrays; a leaf has ``left == -1``; a row goes left when its
    ``feature`` is ``<= threshold``."""

    feature: np.ndarray  # (nodes,) int
    threshold: np.ndarray  # (nodes,) float
    left: np.ndarray  # (nodes,) int, -1 at leaves
    right: np.ndarray
    value: np.ndarray  # (nodes,) float, already times the learning rate
    roots: np.ndarray  # (trees,) int
    base: float
    names: tuple[str, ...] = FEATURES

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted IoU (unclipped) of each row of ``x`` (N, features)."""
        x = np.asarray(x, np.float32)  # as scikit-learn's trees compare
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()  # (N, trees)
        rows = np.arange(len(x))[:, None]
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                break
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            step = np.where(go_left, self.left[node], self.right[node])
            node = np.where(inner, step, node)
        return self.base + self.value[node].sum(1)

    def save(self, path: str | Path) -> Path:
        """Written atomically as a plain ``.npz`` (loaded without unpickling)."""
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            feature=self.feature,
            threshold=self.threshold,
            left=self.left,
            right=self.right,
            value=self.value,
            roots=self.roots,
            base=np.float64(self.base),
            names=np.array(self.names),
        )
        write_bytes_atomic(path, buf.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> BoxRanker:
        with np.load(path, allow_pickle=False) as z:
            names = tuple(str(n) for n in z["names"])
            if names != FEATURES:
                raise ValueError(f"{path}: a box ranking of other features ({', '.join(names)})")
            return cls(
                z["feature"].astype(np.int64),
                z["threshold"].astype(np.float64),
                z["left"].astype(np.int64),
                z["right"].astype(np.int64),
                z["value"].astype(np.float64),
                z["roots"].astype(np.int64),
                float(z["base"]),
            )


def fit(
    x: np.ndarray,
    iou: np.ndarray,
    trees: int = 150,
    depth: int = 4,
    learning_rate: float = 0.05,
    seed: int = 0,
) -> BoxRanker:
    """Fit the ranking on crops' :func:`features` ``x`` and their IoU with the truth."""
    from sklearn.ensemble import GradientBoostingRegressor

    m = GradientBoostingRegressor(
        n_estimators=trees,
        max_depth=depth,
        learning_rate=learning_rate,
        subsample=0.8,
        random_state=seed,
    ).fit(np.asarray(x, np.float64), np.asarray(iou, np.float64))
    feature, threshold, left, right, value, roots = [], [], [], [], [], []
    offset = 0
    for est in m.estimators_[:, 0]:
        t = est.tree_
        leaf = t.children_left < 0
        roots.append(offset)
        feature.append(np.where(leaf, 0, t.feature))
        threshold.append(np.where(leaf, 0.0, t.threshold))
        left.append(np.where(leaf, -1, t.children_left + offset))
        right.append(np.where(leaf, -1, t.children_right + offset))
        value.append(t.value.reshape(-1) * m.learning_rate)
        offset += t.node_count
    ranker = BoxRanker(
        np.concatenate(feature).astype(np.int64),
        np.concatenate(threshold).astype(np.float64),
        np.concatenate(left).astype(np.int64),
        np.concatenate(right).astype(np.int64),
        np.concatenate(value).astype(np.float64),
        np.array(roots, np.int64),
        float(np.ravel(m.init_.constant_)[0]),
    )
    check = np.asarray(x, np.float64)[:2000]  # the exported trees predict as the fitted ones
    np.testing.assert_allclose(ranker.predict(check), m.predict(check), rtol=1e-6, atol=1e-9)
    return ranker


@functools.cache
def default_ranker() -> BoxRanker | None:
    """The ranking shipped with the package (None if its file is missing)."""
    return BoxRanker.load(DEFAULT_PATH) if DEFAULT_PATH.exists() else None

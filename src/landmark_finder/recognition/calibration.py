"""Fit the index-time model — whitening and confidence calibration — from the gallery itself.

Confidence must mean what it says: among answers given with confidence about c, about c are
right. We learn it without any extra labelled queries, by cross-validation over the gallery:

* **Known-landmark queries.** Each gallery photo, in turn (5 folds), is a query against the
  other folds, with whitening refitted on those folds so the held-out photo is really unseen.
  Its features are labelled 1 when the top landmark is right, 0 otherwise.
* **Unknown-landmark queries.** The same photo with its own landmark removed from the gallery
  looks exactly like a photo of a landmark the index does not know — the hardest kind of
  "unknown" (another monument, similar stone and sky). Labelled 0.
* **Non-landmark photos** (``--distractors``): people, food, rooms. Labelled 0.
* **Built-in negatives** (:mod:`landmark_finder.recognition.negatives`): blank, gradient, noise,
  texture and everyday pictures that ship with the package, queried against the whole gallery.
  Labelled 0. They are what a small gallery lacks: with 5 landmarks, the landmark-removed
  queries alone taught the calibrator that any score above a low bar is a landmark.

With one photo per landmark no held-out photo can be answered right, so there is nothing to
fit a logistic regression to; the confidence then comes from the unknowns alone
(:func:`_tail_calibrator`: an answer from the top 1 % of the scores they reach).

A logistic regression on (score, margin) is fitted on these, with the unknowns weighted to
``unknown_share`` of the total so the prior does not depend on how many distractors were given,
and the built-in negatives, on top, with a fixed total weight of ``BUILTIN_WEIGHT`` known
queries: a prior that outweighs a 50-photo gallery and fades in a 1,200-photo one, whose own
landmark-removed queries already say what "unknown" looks like.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from landmark_finder.core.decision import SHORTLIST, Calibrator, aggregate
from landmark_finder.core.sites import rival_features
from landmark_finder.core.views import as_grid, grid_search
from landmark_finder.core.whitening import Whitening, fit_whitening

if TYPE_CHECKING:  # pragma: no cover
    pass

FOLDS = 5
#: Big galleries: whitening is fitted on at most this many photos (a random sample) and at
#: most this many held-out photos are asked as calibration queries, so a refit after adding a
#: few photos to a 100k-photo index takes seconds, not an hour. Smaller galleries use all.
MAX_WHITEN_PHOTOS = 20_000
MAX_CALIBRATION_QUERIES = 5_000


def _sample(n: int, cap: int, seed: int) -> np.ndarray:
    """All of ``range(n)``, or a sorted random ``cap`` of them."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


#: Weak regularisation: three parameters, and the features are small (cosines), so the
#: weights must be free to grow large enough to separate them.
C_REG = 1000.0
#: Weight of all built-in negatives together, in known-query units (each known query: 1).
BUILTIN_WEIGHT = 100.0
#: Truth label of a built-in negative in the calibration runs (landmark-removed: -1).
_BUILTIN = -2


def _one_blas_thread(fn: Callable) -> Callable:
    """Run ``fn`` with BLAS single-threaded: the twelve 1280×1280 eigen-decompositions of a fit
    took 0.8 s each single-threaded but 15 s each multi-threaded while other work loaded both
    cores."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


@dataclass
class CalibrationReport:
    n_known: int
    n_unknown: int
    cv_top1: float  # cross-validated top-1 accuracy of the gallery against itself
    n_builtin: int = 0  # built-in negatives among the unknowns

    def to_dict(self) -> dict:
        return {
            "n_known": self.n_known,
            "n_unknown": self.n_unknown,
            "cv_top1": self.cv_top1,
            "n_builtin": self.n_builtin,
        }


def _unknown_weights(truth: np.ndarray, unknown_share: float, builtin_weight: float) -> np.ndarray:
    """Sample weights: known queries 1; landmark-removed queries and distractors together
    ``unknown_share`` of the total; built-in negatives together ``builtin_weight``."""
    known = truth >= 0
    builtin = truth == _BUILTIN
    other = ~known & ~builtin
    w = np.ones(len(truth))
    w[other] = unknown_share / (1 - unknown_share) * known.sum() / max(other.sum(), 1)
    w[builtin] = builtin_weight / max(builtin.sum(), 1)
    return w


def _folds(labels: np.ndarray, n: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Stratified fold id per photo: each landmark's photos spread over the folds.

    Photos sharing a ``groups`` id (a photo and its augmented variants) share a fold, so a
    held-out photo never meets a copy of itself.
    """
    rng = np.random.default_rng(seed)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    fold = np.empty(len(labels), np.int64)
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        fam, inv = np.unique(groups[idx], return_inverse=True)
        fam_fold = (rng.permutation(len(fam)) + rng.integers(n)) % n
        fold[idx] = fam_fold[inv]
    return fold


def _identity(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32)  # float16 descriptors of a format-2 index compute in 32


def _fold_whitenings(
    descriptors: np.ndarray,
    labels: np.ndarray,
    fold: np.ndarray,
    whiten: bool,
    in_fit: np.ndarray | None = None,
    blocks: tuple[int, ...] = (),
) -> list[Whitening | None]:
    """Per fold, the whitening fitted without that fold on every view of its photos (None
    everywhere without ``whiten``), on the ``in_fit`` rows only when given (a sample of a big
    gallery)."""
    rows = [fold != f if in_fit is None else (fold != f) & in_fit for f in range(FOLDS)]
    return [fit_view_whitening(descriptors[r], labels[r], blocks) if whiten else None for r in rows]


def _cross_folds(
    fold: np.ndarray, whitenings: list[Whitening | None], asked: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]]:
    """Per fold: (training rows, held-out rows (only ``asked`` ones), the projection fitted
    on the training rows): every held-out photo is a query the model has really not seen."""
    for f, w in enumerate(whitenings):
        held_out = fold == f if asked is None else (fold == f) & asked
        yield np.flatnonzero(fold != f), np.flatnonzero(held_out), w or _identity


#: Leading features whose weights must not be negative: the top landmark's score and its margin
#: over the runner-up (both feature layouts start with them). A stronger or clearer match must
#: never lower the confidence; with few references an unconstrained fit learned exactly that
#: (3 photos per landmark, seed 1: margin weight -6.7, so India Gate photos answered "Gateway
#: of India" at 0.93 whatever their margin).
MONOTONE_FEATURES = 2
#: ...and with verification, the top landmark's inliers beyond chance (``verified_features``):
#: more geometric evidence must not lower the confidence either. Unconstrained, the full
#: Indian-monuments gallery's fit gave it -1.24 (the inliers' bonus is already in the score, and
#: on whole gallery photos many inliers come with a high score anyway), so a crop whose global
#: similarity was diluted by clutter but which matched a reference with 72 inliers was answered
#: "unknown" at 0.41.
MONOTONE_VERIFIED_FEATURES = 3


def _fit_calibrator(
    X: np.ndarray,
    target: np.ndarray,
    truth: np.ndarray,
    unknown_share: float,
    threshold: float,
    builtin_weight: float = BUILTIN_WEIGHT,
    monotone: int = MONOTONE_FEATURES,
) -> Calibrator:
    """Logistic regression of right/wrong on the features, with non-negative weights on the
    first ``monotone``; unknown queries (``truth < 0``) get ``unknown_share`` of the
    total weight, so the prior does not depend on how many there are; built-in negatives
    (``truth == _BUILTIN``) their fixed ``builtin_weight`` on top.

    The objective is scikit-learn's L2-penalised logistic loss (``C_REG``, intercept not
    penalised), minimised by SciPy's L-BFGS-B, which takes the bounds that
    ``LogisticRegression`` cannot: when the unconstrained optimum already has such weights
    (the full Indian-monuments gallery) the two fits agree."""
    from scipy.optimize import minimize
    from scipy.special import expit

    sw = _unknown_weights(truth, unknown_share, builtin_weight) * C_REG
    X = np.asarray(X, np.float64)
    y = np.asarray(target, np.float64)
    d = X.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], theta[d]
        z = X @ w + b
        g = sw * (expit(z) - y)
        value = float(np.sum(sw * (np.logaddexp(0.0, z) - y * z)) + 0.5 * w @ w)
        return value, np.concatenate([X.T @ g + w, [g.sum()]])

    bounds = [(0.0, None)] * min(monotone, d) + [(None, None)] * (d + 1 - min(monotone, d))
    res = minimize(
        loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": 10_000, "gtol": 1e-8},
    )  # fmt: skip
    return Calibrator([float(v) for v in res.x[:d]], float(res.x[d]), threshold)


#: A calibrator from negatives only (no right answer in the cross-validation: one photo per
#: landmark) answers from this quantile of the top scores photos of unknown places reach.
TAIL_QUANTILE = 0.99


def _tail_calibrator(X: np.ndarray, truth: np.ndarray, threshold: float) -> Calibrator:
    """Confidence from the top scores (``X[:, 0]``) of the hard negatives — held-out runs and
    distractors, not the built-in negatives (``truth``) — when there is no right answer to learn
    from: ``threshold`` at their 99th percentile, 0.9 one standard deviation of them above it;
    the top score only (the margin is a property of right answers, none of which are here)."""
    scores = np.asarray(X)[np.asarray(truth) != _BUILTIN, 0]
    if len(scores) == 0:
        return Calibrator(threshold=threshold)
    t = float(np.quantile(scores, TAIL_QUANTILE))
    slope = float(np.log(9.0) / max(float(np.std(scores)), 1e-3))
    bias = -slope * t + float(np.log(threshold / (1.0 - threshold)))
    return Calibrator([slope, 0.0], bias, threshold)


def fit_view_whitening(
    grid: np.ndarray, labels: np.ndarray, blocks: tuple[int, ...] = ()
) -> Whitening | None:
    """Whitening fitted on every view of every photo (N, V, D), views labelled as their photo.

    With few references, the crops add the within-landmark variation (framing, scale) that
    three photos cannot show, so the whitening shrinks it (see ``bench/fewshot.py``).
    """
    g = as_grid(grid)
    labels = np.repeat(np.asarray(labels), g.shape[1])
    return fit_whitening(g.reshape(-1, g.shape[-1]), labels, blocks=blocks)


def global_features(ls, sites: np.ndarray | None) -> np.ndarray:
    """Calibration features of a global-only answer: (score, margin), plus the site rival
    features (``core.sites``) when the gallery has sites."""
    f = ls.features()
    return f if sites is None else np.concatenate([f, rival_features(ls, sites)])


def _features(
    queries: np.ndarray,
    gallery: np.ndarray,
    labels: np.ndarray,
    n_labels: int,
    true: np.ndarray | None,
    sites: np.ndarray | None = None,
) -> tuple[list[np.ndarray], list[int]]:
    """Features and right/wrong labels for queries; with ``true``, also the landmark-removed run.

    ``queries`` and ``gallery`` are descriptors (N, d) or views (N, V, d)."""
    counts = np.bincount(labels, minlength=n_labels)
    sims, rows = grid_search(queries, gallery, SHORTLIST)
    feats, ys = [], []
    for i in range(len(queries)):
        ls = aggregate(sims[i], rows[i], labels, counts)
        feats.append(global_features(ls, sites))
        ys.append(int(true is not None and len(ls.labels) > 0 and ls.labels[0] == true[i]))
        if true is not None:
            feats.append(
                global_features(
                    aggregate(sims[i], rows[i], labels, counts, exclude=int(true[i])), sites
                )
            )
            ys.append(-1)  # unknown landmark: never right
    return feats, ys


@_one_blas_thread
def fit_model(
    descriptors: np.ndarray,
    labels: np.ndarray,
    distractors: np.ndarray | None = None,
    whiten: bool = True,
    unknown_share: float = 0.2,
    threshold: float = 0.5,
    seed: int = 0,
    groups: np.ndarray | None = None,
    sites: np.ndarray | None = None,
    negatives: np.ndarray | None = None,
    builtin_weight: float = BUILTIN_WEIGHT,
    blocks: tuple[int, ...] = (),
) -> tuple[Whitening | None, Calibrator, CalibrationReport]:
    """Whitening for the full gallery and a calibrator learned by cross-validation.

    ``descriptors`` are (N, D), or (N, V, D) with every view of each photo (``core.views``);
    ``distractors`` likewise. ``sites`` (site number per label) adds the rival features.
    ``negatives`` are the built-in non-landmark descriptors (raw, like ``descriptors``).
    ``blocks``: a fused descriptor's parts, whitened each on its own (``core.whitening``).
    """
    labels = np.asarray(labels, np.int64)
    descriptors = as_grid(descriptors)
    n_labels = int(labels.max()) + 1 if len(labels) else 0
    fit = _sample(len(labels), MAX_WHITEN_PHOTOS, seed)
    full_w = fit_view_whitening(descriptors[fit], labels[fit], blocks) if whiten else None
    if len(np.unique(labels)) < 2 or len(labels) < 2 * FOLDS:
        # Too little to cross-validate: fall back to the default calibrator.
        return (
            full_w,
            Calibrator(threshold=threshold),
            CalibrationReport(len(labels), 0, float("nan")),
        )

    fold = _folds(labels, FOLDS, seed, groups)
    in_fit = np.zeros(len(labels), bool)
    in_fit[fit] = True
    asked = np.zeros(len(labels), bool)
    asked[_sample(len(labels), MAX_CALIBRATION_QUERIES, seed + 1)] = True
    fold_w = _fold_whitenings(descriptors, labels, fold, full_w is not None, in_fit, blocks)
    if any(w is None for w in fold_w):
        # Whitening must be all or nothing: a calibrator fitted on raw similarities would be
        # applied to whitened ones (another scale) at query time.
        full_w, fold_w = None, [None] * FOLDS
    feats: list[np.ndarray] = []
    ys: list[int] = []
    for tr, te, proj in _cross_folds(fold, fold_w, asked):
        fe, y = _features(
            proj(descriptors[te]), proj(descriptors[tr]), labels[tr], n_labels, labels[te], sites
        )
        feats += fe
        ys += y
    if distractors is not None and len(distractors):
        proj = full_w if full_w is not None else _identity
        fe, y = _features(
            proj(as_grid(distractors)), proj(descriptors), labels, n_labels, None, sites
        )
        feats += fe
        ys += [-1] * len(y)
    n_builtin = 0
    if negatives is not None and len(negatives):
        proj = full_w if full_w is not None else _identity
        fe, _ = _features(
            proj(as_grid(negatives)), proj(descriptors), labels, n_labels, None, sites
        )
        feats += fe
        ys += [_BUILTIN] * len(fe)
        n_builtin = len(fe)

    X = np.stack(feats)
    y = np.asarray(ys)
    known = y >= 0  # unknowns: landmark-removed queries and distractors
    unknown = ~known
    target = (y == 1).astype(int)
    if target.min() == target.max():
        return (
            full_w,
            _tail_calibrator(X, y, threshold)
            if target.max() == 0
            else Calibrator(threshold=threshold),
            CalibrationReport(
                int(known.sum()), int(unknown.sum()), float(target.mean()), n_builtin
            ),
        )
    cal = _fit_calibrator(X, target, y, unknown_share, threshold, builtin_weight)
    cv_top1 = float((y[known] == 1).mean())
    return (
        full_w,
        cal,
        CalibrationReport(int(known.sum()), int(unknown.sum()), cv_top1, n_builtin),
    )

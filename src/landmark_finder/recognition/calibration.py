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

A logistic regression on (score, margin) is fitted on these, with the unknowns weighted to
``unknown_share`` of the total so the prior does not depend on how many distractors were given,
and the built-in negatives, on top, with a fixed total weight of ``BUILTIN_WEIGHT`` known
queries: a prior that outweighs a 50-photo gallery and fades in a 1,200-photo one, whose own
landmark-removed queries already say what "unknown" looks like.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from landmark_finder.core.decision import SHORTLIST, Calibrator, aggregate
from landmark_finder.core.progress import Progress
from landmark_finder.core.search import ExactSearch
from landmark_finder.core.sites import rival_features
from landmark_finder.core.views import as_grid, grid_search
from landmark_finder.core.whitening import Whitening, fit_whitening

if TYPE_CHECKING:  # pragma: no cover
    from landmark_finder.verify.keypoints import LocalStore
    from landmark_finder.verify.matching import SkipRule, VerifiedModel, VerifyConfig

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
) -> list[Whitening | None]:
    """Per fold, the whitening fitted without that fold on every view of its photos (None
    everywhere without ``whiten``), on the ``in_fit`` rows only when given (a sample of a big
    gallery)."""
    rows = [fold != f if in_fit is None else (fold != f) & in_fit for f in range(FOLDS)]
    return [fit_view_whitening(descriptors[r], labels[r]) if whiten else None for r in rows]


def _cross_folds(
    fold: np.ndarray, whitenings: list[Whitening | None], asked: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]]:
    """Per fold: (training rows, held-out rows (only ``asked`` ones), the projection fitted
    on the training rows): every held-out photo is a query the model has really not seen."""
    for f, w in enumerate(whitenings):
        held_out = fold == f if asked is None else (fold == f) & asked
        yield np.flatnonzero(fold != f), np.flatnonzero(held_out), w or _identity


def _fit_calibrator(
    X: np.ndarray,
    target: np.ndarray,
    truth: np.ndarray,
    unknown_share: float,
    threshold: float,
    builtin_weight: float = BUILTIN_WEIGHT,
) -> Calibrator:
    """Logistic regression of right/wrong on the features; unknown queries (``truth < 0``) get
    ``unknown_share`` of the total weight, so the prior does not depend on how many there are;
    built-in negatives (``truth == _BUILTIN``) their fixed ``builtin_weight`` on top."""
    from sklearn.linear_model import LogisticRegression

    sample_w = _unknown_weights(truth, unknown_share, builtin_weight)
    lr = LogisticRegression(C=C_REG).fit(X, target, sample_weight=sample_w)
    return Calibrator([float(v) for v in lr.coef_[0]], float(lr.intercept_[0]), threshold)


def fit_view_whitening(grid: np.ndarray, labels: np.ndarray) -> Whitening | None:
    """Whitening fitted on every view of every photo (N, V, D), views labelled as their photo.

    With few references, the crops add the within-landmark variation (framing, scale) that
    three photos cannot show, so the whitening shrinks it (see ``bench/fewshot.py``).
    """
    g = as_grid(grid)
    return fit_whitening(g.reshape(-1, g.shape[-1]), np.repeat(np.asarray(labels), g.shape[1]))


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
) -> tuple[Whitening | None, Calibrator, CalibrationReport]:
    """Whitening for the full gallery and a calibrator learned by cross-validation.

    ``descriptors`` are (N, D), or (N, V, D) with every view of each photo (``core.views``);
    ``distractors`` likewise. ``sites`` (site number per label) adds the rival features.
    ``negatives`` are the built-in non-landmark descriptors (raw, like ``descriptors``).

    BLAS runs single-threaded here: the twelve 1280×1280 eigen-decompositions took 0.8 s each
    single-threaded but 15 s each multi-threaded while other work loaded both cores.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_model(
            descriptors,
            labels,
            distractors,
            whiten,
            unknown_share,
            threshold,
            seed,
            groups,
            sites,
            negatives,
            builtin_weight,
        )


def _fit_model(
    descriptors: np.ndarray,
    labels: np.ndarray,
    distractors: np.ndarray | None,
    whiten: bool,
    unknown_share: float,
    threshold: float,
    seed: int,
    groups: np.ndarray | None,
    sites: np.ndarray | None = None,
    negatives: np.ndarray | None = None,
    builtin_weight: float = BUILTIN_WEIGHT,
) -> tuple[Whitening | None, Calibrator, CalibrationReport]:

    labels = np.asarray(labels, np.int64)
    descriptors = as_grid(descriptors)
    n_labels = int(labels.max()) + 1 if len(labels) else 0
    fit = _sample(len(labels), MAX_WHITEN_PHOTOS, seed)
    full_w = fit_view_whitening(descriptors[fit], labels[fit]) if whiten else None
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
    fold_w = _fold_whitenings(descriptors, labels, fold, full_w is not None, in_fit)
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
            Calibrator(threshold=threshold),
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


# --- with geometric verification ----------------------------------------------------------------

#: Inlier bonus ``weight * log1p(max(0, inliers - offset))`` tried at index time.
FUSION_WEIGHTS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08)
FUSION_OFFSETS = (3.0, 5.0, 8.0, 12.0)
#: Floor for the inliers wrong landmarks reach by chance. A small gallery has too few wrong
#: pairs to estimate their 99th percentile (13 on the Indian-monuments gallery; 95th: 7).
MIN_CHANCE_INLIERS = 8.0
#: Gallery photos verified as held-out queries at most: bounds index building and every
#: `index add` to ~1.5 min of matching on 2 cores, whatever the gallery's size.
MAX_VERIFIED_QUERIES = 1500


def fit_verified(
    descriptors: np.ndarray,
    labels: np.ndarray,
    local: LocalStore,
    config: VerifyConfig,
    whiten: bool = True,
    unknown_share: float = 0.2,
    threshold: float = 0.5,
    seed: int = 0,
    groups: np.ndarray | None = None,
    progress: Progress | None = None,
    sites: np.ndarray | None = None,
    negatives: np.ndarray | None = None,
    whitening: Whitening | None = None,
    builtin_weight: float = BUILTIN_WEIGHT,
    global_calibrator: Calibrator | None = None,
) -> VerifiedModel:
    """Choose the inlier bonus and fit the verified calibrator by the same cross-validation.

    Every gallery photo is verified against its top landmarks in the other folds, as a known
    query and again with its own landmark removed (an unknown place that shares stone and sky
    with the gallery: chance matches). The bonus (weight, offset) with the best cross-validated
    top-1 wins (ties: the smaller bonus); the calibrator then learns from (score, margin,
    log1p(inliers)) how much inliers really say.

    Built-in ``negatives`` (raw descriptors) are queried against the whole gallery, projected by
    the gallery's ``whitening``, and taken to match no keypoints: they are blanks, textures and
    everyday pictures (the 125 COCO distractors reached 0–8 inliers against a 5-landmark gallery,
    within the chance floor that the inlier feature ignores).
    With ``global_calibrator`` (the one :func:`fit_model` fitted on the same folds), the same
    runs also fit the rule for skipping verification when the global answer is already certain
    (:func:`fit_skip_rule`).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_verified(
            descriptors,
            labels,
            local,
            config,
            whiten,
            unknown_share,
            threshold,
            seed,
            groups,
            progress,
            sites,
            negatives,
            whitening,
            builtin_weight,
            global_calibrator,
        )


def _builtin_runs(
    negatives: np.ndarray, descriptors: np.ndarray, labels: np.ndarray, whitening, config
) -> list:
    """(landmark scores, zero-inlier verification, _BUILTIN) per built-in negative."""
    from landmark_finder.verify.matching import PairMatch, Verification

    proj = whitening if whitening is not None else (lambda x: x)
    if descriptors.ndim == 3:  # views: the whole photo is view 0
        descriptors = descriptors[:, 0]
    counts = np.bincount(labels, minlength=int(labels.max()) + 1)
    sims, rows = ExactSearch(proj(descriptors)).search(proj(negatives), SHORTLIST)
    runs = []
    for j in range(len(negatives)):
        ls = aggregate(sims[j], rows[j], labels, counts)
        n = min(config.landmarks, len(ls.labels))
        v = Verification(ls.labels[:n], np.zeros(n, np.int64), ls.best_rows[:n], [PairMatch(0)] * n)
        runs.append((ls, v, _BUILTIN))
    return runs


def _fit_verified(
    descriptors,
    labels,
    local,
    config,
    whiten,
    unknown_share,
    threshold,
    seed,
    groups,
    progress,
    sites=None,
    negatives=None,
    whitening=None,
    builtin_weight=BUILTIN_WEIGHT,
    global_calibrator=None,
) -> VerifiedModel:

    from landmark_finder.verify.matching import (
        Fusion,
        Matcher,
        VerifiedModel,
        rerank,
        verified_features,
        verify_top,
    )

    labels = np.asarray(labels, np.int64)
    descriptors = as_grid(descriptors)
    default = VerifiedModel(config, Fusion(), Calibrator([20.0, 20.0, 0.0], -14.0, threshold))
    if len(np.unique(labels)) < 2 or len(labels) < 2 * FOLDS:
        return default
    n_labels = int(labels.max()) + 1
    fold = _folds(labels, FOLDS, seed, groups)
    runs = []  # (landmark scores, verification, true label or -1 for "unknown")
    # Held-out queries: every photo, or a random MAX_VERIFIED_QUERIES of them in big galleries
    # (each costs ~50 ms of matching; the search side always uses the whole training folds).
    asked = np.ones(len(labels), bool)
    if len(labels) > MAX_VERIFIED_QUERIES:
        asked[:] = False
        asked[
            np.random.default_rng(seed).choice(len(labels), MAX_VERIFIED_QUERIES, replace=False)
        ] = True
    done = 0
    for tr, te, proj in _cross_folds(
        fold, _fold_whitenings(descriptors, labels, fold, whiten), asked
    ):
        counts = np.bincount(labels[tr], minlength=n_labels)
        sims, rows = grid_search(proj(descriptors[te]), proj(descriptors[tr]), SHORTLIST)

        for j in range(len(te)):  # (BFMatcher already uses every core: threads gained nothing)
            q, grows = int(te[j]), tr[rows[j]]  # the shortlist as gallery rows
            matcher = Matcher(local[q], local, config.ratio)
            for exclude in (None, int(labels[q])):
                ls = aggregate(sims[j], grows, labels, counts, exclude=exclude)
                if len(ls.labels):
                    v = verify_top(sims[j], grows, labels, ls, matcher, config)
                    runs.append((ls, v, int(labels[q]) if exclude is None else -1))
            done += 1
            if progress:
                progress(done, int(asked.sum()))
    truth = np.array([t for _, _, t in runs])
    top1_global = float(np.mean([ls.labels[0] == t for ls, _, t in runs if t >= 0]))
    best = (-1.0, Fusion())
    for weight in FUSION_WEIGHTS:
        for offset in FUSION_OFFSETS if weight > 0 else FUSION_OFFSETS[:1]:
            fu = Fusion(weight, offset)
            top1 = float(np.mean([rerank(ls, v, fu).labels[0] == t for ls, v, t in runs if t >= 0]))
            if top1 > best[0] + 1e-12:
                best = (top1, fu)
    top1, fusion = best
    # inliers of landmarks verified but wrong (other landmarks; all of them when removed)
    wrong = [i for _, v, t in runs for lab, i in zip(v.labels, v.inliers, strict=False) if lab != t]
    chance = max(MIN_CHANCE_INLIERS, float(np.percentile(wrong, 99)) if wrong else 0.0)
    if negatives is not None and len(negatives):
        runs += _builtin_runs(negatives, descriptors, labels, whitening if whiten else None, config)
        truth = np.array([t for _, _, t in runs])
    ranked = [rerank(ls, v, fusion) for ls, v, _ in runs]
    X = np.stack([verified_features(r, chance, sites) for r in ranked])
    target = np.array(
        [int(t >= 0 and r.labels[0] == t) for r, t in zip(ranked, truth, strict=False)]
    )
    if target.min() == target.max():
        return VerifiedModel(config, fusion, default.calibrator, chance, top1, top1_global)
    cal = _fit_calibrator(X, target, truth, unknown_share, threshold, builtin_weight)
    model = VerifiedModel(config, fusion, cal, chance, top1, top1_global)
    if global_calibrator is not None:
        g_conf = np.array(
            [global_calibrator.confidence(global_features(ls, sites)) for ls, _, _ in runs]
        )
        v_conf = cal.confidence(X)
        g_right = np.array([t >= 0 and ls.labels[0] == t for ls, _, t in runs])
        v_right = target.astype(bool)
        # what the benchmark sees: the answer's status, and whether a known query's top is right
        changed = ((g_conf >= threshold) != (v_conf >= threshold)) | (g_right != v_right)
        model.skip = fit_skip_rule(g_conf, changed, threshold)
    return model


#: Share of the cross-validation runs whose answer skipping verification may change, per side.
SKIP_MAX_CHANGED = 0.002


def fit_skip_rule(
    g_conf: np.ndarray, changed: np.ndarray, threshold: float, max_changed: float = SKIP_MAX_CHANGED
) -> SkipRule:
    """The widest skip thresholds under which at most ``max_changed`` of the runs (per side)
    would get another answer than with verification.

    ``g_conf``: global confidence of each cross-validation run; ``changed``: whether
    verification changed its answer (status, or the correctness of the top landmark). Skipping
    above keeps the global "recognized" answers from ``above`` up; skipping below keeps the
    global "unknown" answers under ``below``; verification runs in between.
    """
    from landmark_finder.verify.matching import SkipRule

    g = np.asarray(g_conf, np.float64)
    c = np.asarray(changed, np.int64)
    n = len(g)
    if n == 0:
        return SkipRule()
    budget = int(max_changed * n)
    order = np.argsort(g, kind="stable")
    gs, cs = g[order], c[order]
    # above: smallest t >= threshold with changes among {g >= t} within budget
    suffix = np.cumsum(cs[::-1])[::-1]  # suffix[i] = changes among gs[i:]
    above = None
    for i in np.flatnonzero(gs >= threshold):
        first = int(np.searchsorted(gs, gs[i], "left"))  # ties skip together
        if suffix[first] <= budget:
            above = float(gs[first])
            break
    # below: largest t <= threshold with changes among {g < t} within budget
    prefix = np.concatenate([[0], np.cumsum(cs)])  # prefix[k] = changes among gs[:k]
    k = int(np.searchsorted(prefix, budget, "right")) - 1  # most runs skippable from the bottom
    k = min(k, int(np.searchsorted(gs, threshold, "left")))
    below = None
    if k > 0:
        below = float(min(gs[k], threshold)) if k < n else float(threshold)
        k = int(np.searchsorted(gs, below, "left"))
    skipped = (n - int(np.searchsorted(gs, above, "left")) if above is not None else 0) + (
        k if below is not None else 0
    )
    n_changed = int(c[(g >= above) if above is not None else np.zeros(n, bool)].sum()) + int(
        c[(g < below) if below is not None else np.zeros(n, bool)].sum()
    )
    return SkipRule(above, below, 1.0 - skipped / n, n_changed)

"""Fit the verified model: the inlier bonus and the calibrator that scores answers checked by
geometric verification, by the same gallery cross-validation as :mod:`.calibration` (whose fold,
whitening and calibrator helpers it reuses), plus the rule for skipping verification when the
global answer is already certain."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from landmark_finder.core.decision import SHORTLIST, Calibrator, aggregate
from landmark_finder.core.progress import Progress
from landmark_finder.core.search import ExactSearch
from landmark_finder.core.views import as_grid, grid_search
from landmark_finder.core.whitening import Whitening

if TYPE_CHECKING:  # pragma: no cover
    from landmark_finder.verify.keypoints import LocalStore
    from landmark_finder.verify.matching import SkipRule, VerifiedModel, VerifyConfig

from landmark_finder.recognition.calibration import (
    _BUILTIN,
    BUILTIN_WEIGHT,
    FOLDS,
    MONOTONE_VERIFIED_FEATURES,
    _cross_folds,
    _fit_calibrator,
    _fold_whitenings,
    _folds,
    _one_blas_thread,
    _tail_calibrator,
    global_features,
)

#: Inlier bonus ``weight * log1p(max(0, inliers - offset))`` tried at index time.
FUSION_WEIGHTS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08)
FUSION_OFFSETS = (3.0, 5.0, 8.0, 12.0)
#: Floor for the inliers wrong landmarks reach by chance. A small gallery has too few wrong
#: pairs to estimate their 99th percentile (13 on the Indian-monuments gallery; 95th: 7).
MIN_CHANCE_INLIERS = 8.0
#: Gallery photos verified as held-out queries at most: bounds index building and every
#: `index add` to ~1.5 min of matching on 2 cores, whatever the gallery's size.
MAX_VERIFIED_QUERIES = 1500


@_one_blas_thread
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
    blocks: tuple[int, ...] = (),
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
    from landmark_finder.verify.matching import (
        Fusion,
        VerifiedModel,
        rerank,
        verified_features,
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
    with _matching_threads() as pool:
        for tr, te, proj in _cross_folds(
            fold, _fold_whitenings(descriptors, labels, fold, whiten, blocks=blocks), asked
        ):
            counts = np.bincount(labels[tr], minlength=n_labels)
            sims, rows = grid_search(proj(descriptors[te]), proj(descriptors[tr]), SHORTLIST)

            shortlists = (tr[r] for r in rows)  # as gallery rows
            ask = partial(_held_out_runs, labels=labels, counts=counts, local=local, config=config)
            for found in pool.map(ask, te, sims, shortlists):  # in order: the same runs
                runs += found
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
        cal = _tail_calibrator(X, truth, threshold) if target.max() == 0 else default.calibrator
        return VerifiedModel(config, fusion, cal, chance, top1, top1_global)
    cal = _fit_calibrator(
        X, target, truth, unknown_share, threshold, builtin_weight, MONOTONE_VERIFIED_FEATURES
    )
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


def _held_out_runs(
    q: int, sims: np.ndarray, rows: np.ndarray, labels, counts, local, config
) -> list:
    """The runs of held-out photo ``q`` with its shortlist (``sims``, gallery ``rows``): as a
    known query, then as an unknown place (its own landmark removed)."""
    from landmark_finder.verify.matching import Matcher, verify_top

    matcher = Matcher(local[int(q)], local, config.ratio)
    out = []
    for exclude in (None, int(labels[q])):
        ls = aggregate(sims, rows, labels, counts, exclude=exclude)
        if len(ls.labels):
            v = verify_top(sims, rows, labels, ls, matcher, config)
            out.append((ls, v, int(labels[q]) if exclude is None else -1))
    return out


@contextmanager
def _matching_threads() -> Iterator[ThreadPoolExecutor]:
    """A thread per core for matching held-out photos, with OpenCV's own threads off meanwhile.

    Matching (a BLAS matrix product for the ratio test, OpenCV's MAGSAC) releases the GIL;
    each pair is small, so parallel loops inside one pair kept the second core mostly idle,
    while one held-out photo per thread keeps both busy (BLAS is single-threaded here, see
    ``_one_blas_thread``). Each pair's result does not depend on the thread that computes it
    (MAGSAC seeds its sampler per call), so the fit is the same as one thread's."""
    import cv2

    from landmark_finder.recognition.runner import default_workers

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with ThreadPoolExecutor(default_workers()) as pool:
            yield pool
    finally:
        cv2.setNumThreads(before)


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

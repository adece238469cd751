"""Index-time model fitting (whitening + calibrator by cross-validation) on synthetic clusters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landmark_finder.core.decision import SHORTLIST, Calibrator, aggregate
from landmark_finder.core.search import ExactSearch
from landmark_finder.core.whitening import Whitening
from landmark_finder.recognition.calibration import (
    FOLDS,
    CalibrationReport,
    _folds,
    _tail_calibrator,
    fit_model,
)

N_CLS, N_PER, DIM, SIGMA = 8, 15, 64, 0.06


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def clusters():
    """8 well-separated landmarks x 15 photos in 64-D, plus the centre of a 9th, unseen one."""
    rng = np.random.default_rng(0)
    centres = _unit(rng.normal(size=(N_CLS + 1, DIM)))
    labels = np.repeat(np.arange(N_CLS), N_PER)
    x = _unit(centres[labels] + SIGMA * rng.normal(size=(len(labels), DIM))).astype(np.float32)
    return x, labels, centres


@pytest.fixture(scope="module")
def fitted(clusters):
    x, labels, _ = clusters
    return fit_model(x, labels, seed=0)


def _confidence(model, x, labels, q):
    """What the recognizer does: project, search the gallery, aggregate, calibrate."""
    w, cal, _ = model
    proj = w if w is not None else (lambda v: np.asarray(v, np.float32))
    sims, rows = ExactSearch(proj(x)).search(proj(q), SHORTLIST)
    counts = np.bincount(labels)
    out = []
    for s, r in zip(sims, rows, strict=False):
        ls = aggregate(s, r, labels, counts)
        out.append((float(cal.confidence(ls.features())), int(ls.labels[0])))
    return out


def test_fitted_model_on_well_separated_clusters(fitted):
    w, cal, rep = fitted
    assert isinstance(w, Whitening)
    assert isinstance(cal, Calibrator) and cal.threshold == 0.5
    assert cal != Calibrator()  # actually fitted, not the fallback
    # More evidence (score) and a clearer win (margin) both mean more confidence.
    assert cal.weights[0] > 0 and cal.weights[1] > 0
    assert rep.cv_top1 == pytest.approx(1.0)


def test_held_out_in_cluster_point_is_confident_and_right(clusters, fitted):
    x, labels, centres = clusters
    rng = np.random.default_rng(101)
    q = _unit(centres[:N_CLS] + SIGMA * rng.normal(size=(N_CLS, DIM)))
    for true, (conf, pred) in enumerate(_confidence(fitted, x, labels, q)):
        assert pred == true
        assert conf > 0.8


def test_random_point_far_from_all_clusters_is_not_confident(clusters, fitted):
    x, labels, centres = clusters
    rng = np.random.default_rng(102)
    q = _unit(rng.normal(size=(10, DIM)))
    assert (q @ centres[:N_CLS].T).max() < 0.6  # really far from every cluster
    confs = [c for c, _ in _confidence(fitted, x, labels, q)]
    assert max(confs) < 0.5


def test_point_of_unseen_landmark_is_not_confident(clusters, fitted):
    x, labels, centres = clusters
    rng = np.random.default_rng(103)
    q = _unit(centres[N_CLS] + SIGMA * rng.normal(size=(10, DIM)))
    confs = [c for c, _ in _confidence(fitted, x, labels, q)]
    assert max(confs) < 0.5


def test_report_counts_without_distractors(clusters, fitted):
    x, _, _ = clusters
    rep = fitted[2]
    assert rep.n_known == len(x)
    assert rep.n_unknown == len(x)  # each photo once more, with its own landmark removed
    assert rep.to_dict() == {
        "n_known": rep.n_known,
        "n_unknown": rep.n_unknown,
        "cv_top1": rep.cv_top1,
        "n_builtin": 0,
    }


def test_report_counts_with_distractors(clusters):
    x, labels, _ = clusters
    rng = np.random.default_rng(104)
    distractors = _unit(rng.normal(size=(13, DIM))).astype(np.float32)
    _, cal, rep = fit_model(x, labels, distractors=distractors, whiten=False, threshold=0.7)
    assert rep.n_known == len(x)
    assert rep.n_unknown == len(x) + len(distractors)
    assert cal.threshold == 0.7


def test_builtin_negatives_teach_unknown_without_moving_known_answers(clusters):
    """Negatives far from every landmark count as unknowns with their own weight share."""
    x, labels, centres = clusters
    rng = np.random.default_rng(105)
    negatives = _unit(rng.normal(size=(40, DIM))).astype(np.float32)
    model = fit_model(x, labels, whiten=False, negatives=negatives)
    _, cal, rep = model
    assert rep.n_builtin == len(negatives) and rep.n_unknown == len(x) + len(negatives)
    assert rep.to_dict()["n_builtin"] == len(negatives)
    q = _unit(centres[0] + 0.05 * rng.normal(size=DIM))
    conf, lab = _confidence(model, x, labels, q[None].astype(np.float32))[0]
    assert lab == 0 and conf > 0.5
    assert max(c for c, _ in _confidence(model, x, labels, negatives)) < 0.5


def test_without_whitening(clusters):
    x, labels, centres = clusters
    rng = np.random.default_rng(105)
    model = fit_model(x, labels, whiten=False)
    assert model[0] is None
    q_in = _unit(centres[:2] + SIGMA * rng.normal(size=(2, DIM)))
    q_new = _unit(centres[N_CLS:] + SIGMA * rng.normal(size=(1, DIM)))
    assert all(c > 0.8 for c, _ in _confidence(model, x, labels, q_in))
    assert all(c < 0.5 for c, _ in _confidence(model, x, labels, q_new))


def test_same_seed_same_model(clusters):
    x, labels, _ = clusters
    a = fit_model(x, labels, whiten=False, seed=3)
    b = fit_model(x, labels, whiten=False, seed=3)
    assert a[1] == b[1] and a[2] == b[2]


# ------------------------------------------------------------------------------ fallbacks


def test_single_landmark_falls_back(clusters):
    x, _, _ = clusters
    one = x[:N_PER]
    w, cal, rep = fit_model(one, np.zeros(N_PER, np.int64), threshold=0.6)
    assert w is None  # fewer than MIN_LANDMARKS
    assert cal == Calibrator(threshold=0.6)
    assert rep.n_known == N_PER and rep.n_unknown == 0 and math.isnan(rep.cv_top1)


def test_too_few_photos_to_cross_validate_falls_back(clusters):
    x, labels, _ = clusters
    keep = np.concatenate([np.flatnonzero(labels == k)[:3] for k in range(3)])  # 9 < 2 * FOLDS
    assert len(keep) < 2 * FOLDS
    w, cal, rep = fit_model(x[keep], labels[keep])
    assert w is None and cal == Calibrator()
    assert rep.n_known == len(keep) and rep.n_unknown == 0


def test_empty_gallery_falls_back():
    w, cal, rep = fit_model(np.zeros((0, DIM), np.float32), np.zeros(0, np.int64))
    assert w is None and cal == Calibrator()
    assert rep == CalibrationReport(0, 0, rep.cv_top1) and math.isnan(rep.cv_top1)


def test_single_photo_per_landmark_answers_from_the_unknowns_tail(clusters):
    # No held-out photo ever has its landmark in the other folds: every answer is wrong, so
    # the confidence comes from the scores those runs (unknown places) reach: a new photo of
    # an indexed landmark scores far above them and is answered, an unseen landmark's is not.
    x, labels, centres = clusters
    xs = x[::N_PER][:N_CLS]
    xs = np.concatenate([xs, _unit(np.random.default_rng(9).normal(size=(4, DIM)))])
    ls = np.arange(len(xs))  # 12 landmarks, enough photos to cross-validate
    model = fit_model(xs.astype(np.float32), ls, whiten=False)
    w, cal, rep = model
    assert rep.n_known == len(xs) and rep.cv_top1 == 0.0
    assert cal != Calibrator() and cal.weights[1] == 0.0  # the top score only
    new = x[1::N_PER][:N_CLS]  # another photo of each landmark
    for (conf, top), truth in zip(_confidence(model, xs, ls, new), ls[:N_CLS], strict=True):
        assert top == truth and conf >= cal.threshold
    unseen = _unit(centres[N_CLS:] + SIGMA * np.random.default_rng(5).normal(size=(3, DIM)))
    assert all(c < cal.threshold for c, _ in _confidence(model, xs, ls, unseen))
    # without any run to learn from: the default
    assert _tail_calibrator(np.zeros((0, 2)), np.zeros(0), 0.5) == Calibrator()


# -------------------------------------------------------------------------------- folds


def test_folds_are_stratified():
    labels = np.repeat(np.arange(6), [1, 4, 5, 7, 10, 23])
    fold = _folds(labels, FOLDS, seed=0)
    assert fold.min() >= 0 and fold.max() < FOLDS
    for lab in np.unique(labels):
        per_fold = np.bincount(fold[labels == lab], minlength=FOLDS)
        assert per_fold.max() - per_fold.min() <= 1
    np.testing.assert_array_equal(fold, _folds(labels, FOLDS, seed=0))


def test_calibrator_is_monotone_in_score_and_margin_and_else_sklearns():
    """Score and margin weights (and, verified, the inliers') are never negative (a clearer
    match never lowers confidence); where the unconstrained optimum already has them so, the
    fit is scikit-learn's (run to convergence: its default tolerance stops about 0.5 % short
    of the optimum here)."""
    from sklearn.linear_model import LogisticRegression

    from landmark_finder.recognition.calibration import (
        BUILTIN_WEIGHT,
        C_REG,
        MONOTONE_VERIFIED_FEATURES,
        _fit_calibrator,
        _unknown_weights,
    )

    rng = np.random.default_rng(0)
    n = 3000
    s1 = rng.uniform(0.2, 0.9, n)
    margin, inliers = rng.uniform(0, 0.3, n) * s1, rng.exponential(1.0, n)
    X = np.c_[s1, margin, inliers]
    truth = np.where(rng.random(n) < 0.3, -1, 1)
    for true_w, monotone in (((20.0, 10.0, -1.0), True), ((20.0, -8.0, -1.0), False)):
        z = X @ np.array(true_w) - 12.0
        y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
        cal = _fit_calibrator(X, y, truth, 0.2, 0.5)
        assert min(cal.weights[:2]) >= 0.0 and cal.weights[2] < 0  # the third one is free
        if monotone:
            sw = _unknown_weights(truth, 0.2, BUILTIN_WEIGHT)
            lr = LogisticRegression(C=C_REG, tol=1e-10, max_iter=10_000)
            lr.fit(X, y, sample_weight=sw)
            np.testing.assert_allclose(cal.weights, lr.coef_[0], rtol=2e-3, atol=2e-3)
            assert cal.bias == pytest.approx(lr.intercept_[0], abs=2e-3)
        else:
            assert cal.weights[1] == 0.0  # held at the bound rather than turned against margin
    # the verified fit bounds its third feature, the inliers beyond chance, as well
    verified = _fit_calibrator(X, y, truth, 0.2, 0.5, monotone=MONOTONE_VERIFIED_FEATURES)
    assert verified.weights[2] == 0.0 and min(verified.weights) >= 0.0

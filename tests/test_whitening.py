"""Learned whitening on synthetic galleries: when it is fitted, what it outputs, that it helps."""

from __future__ import annotations

import numpy as np
import pytest

from landmark_finder.core.whitening import MIN_LANDMARKS, MIN_PHOTOS, Whitening, fit_whitening


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _blobs(rng, n_cls: int, n_per: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(n_cls), n_per)
    centres = rng.normal(size=(n_cls, dim))
    return _unit(centres[labels] + 0.3 * rng.normal(size=(len(labels), dim))), labels


# ------------------------------------------------------------------------- when it is fitted


def test_constants():
    assert MIN_LANDMARKS == 3 and MIN_PHOTOS == 20


def test_too_few_landmarks_returns_none():
    x, labels = _blobs(np.random.default_rng(0), MIN_LANDMARKS - 1, 20, 16)
    assert len(x) >= MIN_PHOTOS
    assert fit_whitening(x, labels) is None


def test_too_few_photos_returns_none():
    x, labels = _blobs(np.random.default_rng(0), 6, 3, 16)  # 6 landmarks, 18 photos
    assert len(x) < MIN_PHOTOS
    assert fit_whitening(x, labels) is None


def test_single_photo_landmarks_do_not_count_as_landmarks():
    # 2 landmarks with 10 photos each + 5 landmarks with a single photo: no within-landmark
    # variation can be seen in the singletons, so only 2 landmarks are usable.
    rng = np.random.default_rng(0)
    x, labels = _blobs(rng, 7, 1, 16)
    x2, labels2 = _blobs(rng, 2, 10, 16)
    x = np.concatenate([x, x2])
    labels = np.concatenate([labels, labels2 + 7])
    assert fit_whitening(x, labels) is None


def test_minimal_gallery_is_fitted():
    x, labels = _blobs(np.random.default_rng(0), MIN_LANDMARKS, 7, 16)  # 3 landmarks, 21 photos
    assert isinstance(fit_whitening(x, labels), Whitening)


# ------------------------------------------------------------------------------ its outputs


def test_output_shape_unit_length_and_dtype():
    x, labels = _blobs(np.random.default_rng(1), 5, 8, 32)
    w = fit_whitening(x, labels)
    assert w.mean.shape == (32,) and w.projection.shape == (32, 32)
    y = w(x)
    assert y.shape == (40, 32) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(y).all()


def test_dim_reduces_output():
    x, labels = _blobs(np.random.default_rng(1), 5, 8, 32)
    w = fit_whitening(x, labels, dim=10)
    y = w(x)
    assert w.projection.shape == (32, 10) and y.shape == (40, 10)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    # dim larger than the input is capped at the input dimension.
    assert fit_whitening(x, labels, dim=100).projection.shape == (32, 32)


def test_works_on_single_vector():
    x, labels = _blobs(np.random.default_rng(2), 4, 6, 24)
    w = fit_whitening(x, labels)
    one = w(x[3])
    assert one.shape == (24,)
    assert np.linalg.norm(one) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(one, w(x)[3], atol=1e-6)
    # float64 and list inputs work too.
    np.testing.assert_allclose(w(x[3].astype(np.float64).tolist()), one, atol=1e-6)


def test_more_dimensions_than_photos_stays_finite():
    # 25 photos in 128-D: the within-landmark covariance is rank deficient; shrinkage saves it.
    x, labels = _blobs(np.random.default_rng(3), 5, 5, 128)
    w = fit_whitening(x, labels)
    y = w(x)
    assert np.isfinite(w.projection).all() and np.isfinite(y).all()
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)


# ------------------------------------------------------------------------------ that it helps


def _nuisance_gallery(rng, centres, nuisance, n_per):
    """Class centre + large variation along a few shared nuisance directions + small noise."""
    n_cls, dim = centres.shape
    labels = np.repeat(np.arange(n_cls), n_per)
    strength = 1.5 * rng.normal(size=(len(labels), len(nuisance)))
    x = centres[labels] + strength @ nuisance + 0.05 * rng.normal(size=(len(labels), dim))
    return _unit(x), labels


def _accuracy(gallery, g_labels, queries, q_labels, n_cls):
    means = _unit(np.stack([gallery[g_labels == k].mean(0) for k in range(n_cls)]))
    ncm = float(((queries @ means.T).argmax(1) == q_labels).mean())
    nn = float((g_labels[(queries @ gallery.T).argmax(1)] == q_labels).mean())
    return ncm, nn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_whitening_suppresses_shared_nuisance(seed):
    rng = np.random.default_rng(seed)
    n_cls, dim = 12, 48
    centres = rng.normal(size=(n_cls, dim)) / np.sqrt(dim)  # centres of norm ~1
    nuisance = np.linalg.qr(rng.normal(size=(dim, 4)))[0].T  # 4 orthonormal directions
    gallery, g_labels = _nuisance_gallery(rng, centres, nuisance, 10)
    queries, q_labels = _nuisance_gallery(rng, centres, nuisance, 10)

    w = fit_whitening(gallery, g_labels)
    assert w is not None
    ncm_raw, nn_raw = _accuracy(gallery, g_labels, queries, q_labels, n_cls)
    ncm_w, nn_w = _accuracy(w(gallery), g_labels, w(queries), q_labels, n_cls)

    assert ncm_w >= 0.9 and nn_w >= 0.9
    assert ncm_w - ncm_raw >= 0.3
    assert nn_w - nn_raw >= 0.3


def test_whitening_shrinks_nuisance_directions():
    # After projection, the nuisance directions carry far less of the within-class spread.
    rng = np.random.default_rng(5)
    n_cls, dim = 10, 32
    centres = rng.normal(size=(n_cls, dim)) / np.sqrt(dim)
    nuisance = np.linalg.qr(rng.normal(size=(dim, 3)))[0].T
    gallery, labels = _nuisance_gallery(rng, centres, nuisance, 12)
    w = fit_whitening(gallery, labels)

    def within_over_between(y):
        means = np.stack([y[labels == k].mean(0) for k in range(n_cls)])
        within = ((y - means[labels]) ** 2).sum(1).mean()
        between = ((means - means.mean(0)) ** 2).sum(1).mean()
        return within / between

    assert within_over_between(w(gallery)) < 0.4 * within_over_between(gallery)

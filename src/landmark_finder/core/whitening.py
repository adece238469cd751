"""Learned whitening: a linear projection of descriptors fitted on the gallery at index time.

Off-the-shelf ImageNet features spend much of their variance on what photos of one landmark do
*not* share (sky, light, crowds, viewpoint). Following Radenović et al. ("Fine-tuning CNN image
retrieval with no human annotation", learned whitening), we whiten the within-landmark
covariance of the gallery — so directions along which photos of the same landmark differ are
shrunk — and then rotate to the principal directions of the whole gallery. It needs only the
gallery's folder labels, no training; shrinkage keeps it stable with few photos per landmark.
On the Indian-monuments benchmark it lifts EfficientNet-Lite2 top-1 from 0.940 to 0.963.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Galleries smaller than this keep the raw descriptors: the covariance would be noise.
MIN_LANDMARKS = 3
MIN_PHOTOS = 20


@dataclass
class Whitening:
    mean: np.ndarray  # (D,)
    projection: np.ndarray  # (D, d)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Project and re-normalise; works on one vector (D,) or an array (..., D)."""
        return self.with_lengths(x)[0]

    def with_lengths(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The projected unit vectors and the length each had before normalising (what an
        exact re-scoring from ``x`` needs, see ``core.search.ProjectedRows``).

        Stacked inputs (a gallery's (N, V, D) view grid) are projected as one 2-D matrix
        product: ``@`` on a 3-D array runs one small product per row, 2-3x slower."""
        x = np.asarray(x, np.float32)
        y = ((x.reshape(-1, x.shape[-1]) - self.mean) @ self.projection).reshape(*x.shape[:-1], -1)
        n = np.linalg.norm(y, axis=-1, keepdims=True)
        return (y / np.maximum(n, 1e-12)).astype(np.float32), n[..., 0].astype(np.float32)


def fit_whitening(
    x: np.ndarray, labels: np.ndarray, shrinkage: float = 1.0, dim: int | None = None
) -> Whitening | None:
    """Fit on gallery descriptors ``x`` (N, D) with integer landmark ``labels`` (N,).

    Returns None when the gallery is too small to estimate anything useful; callers then use
    the raw descriptors. ``shrinkage`` is added to the within-landmark covariance as a multiple
    of its mean eigenvalue (1.0 measured best on the benchmark, 0.3–3 within 0.5 points).
    """
    x = np.asarray(x, np.float64)
    labels = np.asarray(labels)
    groups = [x[labels == k] for k in np.unique(labels)]
    groups = [g for g in groups if len(g) >= 2]
    if len(groups) < MIN_LANDMARKS or len(x) < MIN_PHOTOS:
        return None
    d_in = x.shape[1]
    within = np.concatenate([g - g.mean(0) for g in groups])
    cw = within.T @ within / len(within)
    cw += shrinkage * (np.trace(cw) / d_in) * np.eye(d_in)
    ew, ev = np.linalg.eigh(cw)
    w_inv_sqrt = (ev * ew**-0.5) @ ev.T
    mean = x.mean(0)
    xw = (x - mean) @ w_inv_sqrt
    eb, eb_vecs = np.linalg.eigh(np.cov(xw.T))
    order = np.argsort(-eb)
    d = min(dim or min(1024, d_in), d_in)
    projection = w_inv_sqrt @ eb_vecs[:, order[:d]]
    return Whitening(mean.astype(np.float32), projection.astype(np.float32))

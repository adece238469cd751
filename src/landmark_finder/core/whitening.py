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
    #: Output dimensions of each part of a fused descriptor (``backbones.sscd``), whitened on
    #: its own (block-diagonal ``projection``) and made unit length on its own, then scaled by
    #: 1/sqrt(parts): a similarity is the mean of the parts' cosines. () = one part.
    blocks: tuple[int, ...] = ()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Project and re-normalise; works on one vector (D,) or an array (..., D)."""
        return self.with_lengths(x)[0]

    def with_lengths(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The projected unit vectors and the length each had before normalising (what an
        exact re-scoring from ``x`` needs, see ``core.search.ProjectedRows``).

        Stacked inputs (a gallery's (N, V, D) view grid) are projected as one 2-D matrix
        product: ``@`` on a 3-D array runs one small product per row, 2-3x slower. With
        ``blocks`` the lengths are per part: (..., parts)."""
        x = np.asarray(x, np.float32)
        y = ((x.reshape(-1, x.shape[-1]) - self.mean) @ self.projection).reshape(*x.shape[:-1], -1)
        if not self.blocks:
            n = np.linalg.norm(y, axis=-1, keepdims=True)
            return (y / np.maximum(n, 1e-12)).astype(np.float32), n[..., 0].astype(np.float32)
        parts = np.split(y, np.cumsum(self.blocks)[:-1], axis=-1)
        ns = [np.linalg.norm(p, axis=-1, keepdims=True) for p in parts]
        scale = np.float32(1 / np.sqrt(len(parts)))
        out = np.concatenate([p / np.maximum(n, 1e-12) for p, n in zip(parts, ns, strict=True)], -1)
        return (out * scale).astype(np.float32), np.concatenate(ns, -1).astype(np.float32)


def fit_whitening(
    x: np.ndarray,
    labels: np.ndarray,
    shrinkage: float = 1.0,
    dim: int | None = None,
    blocks: tuple[int, ...] = (),
) -> Whitening | None:
    """Fit on gallery descriptors ``x`` (N, D) with integer landmark ``labels`` (N,).

    Returns None when the gallery is too small to estimate anything useful; callers then use
    the raw descriptors. ``shrinkage`` is added to the within-landmark covariance as a multiple
    of its mean eigenvalue (1.0 measured best on the benchmark, 0.3–3 within 0.5 points).
    ``blocks``: the input dimensions of a fused descriptor's parts, each whitened on its own
    (one whitening of the concatenation mixes the parts' scales: few-shot top-1 at 3 references
    0.800 against 0.833, ``bench/fewshot.py``).
    """
    if len(blocks) > 1:
        fits = [
            fit_whitening(p, labels, shrinkage, dim)
            for p in np.split(np.asarray(x), np.cumsum(blocks)[:-1], axis=1)
        ]
        if any(f is None for f in fits):
            return None
        outs = tuple(f.projection.shape[1] for f in fits)
        projection = np.zeros((sum(blocks), sum(outs)), np.float32)
        rows, cols = np.cumsum((0, *blocks))[:-1], np.cumsum((0, *outs))[:-1]
        for f, r, c in zip(fits, rows, cols, strict=True):
            projection[r : r + f.projection.shape[0], c : c + f.projection.shape[1]] = f.projection
        mean = np.concatenate([f.mean for f in fits])
        return Whitening(mean, projection, outs)
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

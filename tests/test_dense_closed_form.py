"""The closed-form (NumPy) contribution map equals PyTorch autograd's gradient × activation;
region descriptors from integral images equal GeM over each region's own cells."""

from __future__ import annotations

import numpy as np
import pytest

from landmark_finder.core.whitening import Whitening
from landmark_finder.explain import dense


@pytest.mark.parametrize("whiten", [False, True])
def test_closed_form_matches_autograd(whiten: bool):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    c, d = 64, 48
    fmap = np.maximum(rng.normal(0.5, 1.0, (c, 7, 9)), 0).astype(np.float32)  # ReLU-like
    w = (
        Whitening(
            rng.normal(0, 0.05, c).astype(np.float32), rng.normal(0, 1, (c, d)).astype(np.float32)
        )
        if whiten
        else None
    )
    target = rng.normal(0, 1, d if whiten else c).astype(np.float32)
    target /= np.linalg.norm(target)

    class _Index:
        whitening = w
        blocks = ()  # one part (a fused index's backbone part: test_fused.py)

    model = dense.DenseModel("x", "h", np.zeros(3), np.ones(3), 3.0, None, None, "onnx")
    torch_model = dense.DenseModel(
        "x", "h", np.zeros(3), np.ones(3), 3.0, None, lambda z: F.normalize(z, dim=-1), "torch"
    )
    ours, s1 = dense.contribution(model, _Index(), fmap, target)
    ref, s2 = dense.contribution(torch_model, _Index(), fmap, target)
    assert s1 == pytest.approx(s2, abs=1e-5)
    np.testing.assert_allclose(ours, ref, atol=1e-6 + 1e-4 * np.abs(ref).max())
    assert torch is not None


@pytest.mark.parametrize("whiten", [False, True])
def test_region_descriptors_pool_each_box_as_a_photo_is_pooled(whiten: bool):
    """A region's descriptor from the integral images equals GeM over its own cells, then L2
    and the whitening (the whole photo's descriptor is the region of every cell); the trained
    head's PyTorch tail gives the same for an identity head."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    c, d = 32, 24
    fmap = np.maximum(rng.normal(0.5, 1.0, (c, 9, 13)), 0).astype(np.float32)
    w = (
        Whitening(
            rng.normal(0, 0.05, c).astype(np.float32), rng.normal(0, 1, (c, d)).astype(np.float32)
        )
        if whiten
        else None
    )

    class _Index:
        whitening = w
        blocks = ()

        def project(self, x):
            return w(x) if w is not None else x

    boxes = dense.region_boxes(9, 13)
    assert len(boxes) == len({tuple(b) for b in boxes.tolist()}) > 50
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 13).all() and (boxes[:, 3] <= 9).all()
    assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
    boxes = np.vstack([boxes, [[0, 0, 13, 9]]])
    model = dense.DenseModel("x", "h", np.zeros(3), np.ones(3), 3.0, None, None, "onnx")
    got = dense.region_descriptors(model, _Index(), [fmap], boxes)
    for (x0, y0, x1, y1), z in zip(boxes, got, strict=True):
        cells = np.maximum(fmap[:, y0:y1, x0:x1].astype(np.float64), 1e-6)
        g = (cells**3).mean((1, 2)) ** (1 / 3)
        g /= np.linalg.norm(g)
        want = _Index().project(g.astype(np.float32))
        np.testing.assert_allclose(z, want, atol=1e-5)
    assert np.linalg.norm(got, axis=1) == pytest.approx(1.0, abs=1e-5)
    head = dense.DenseModel(
        "x", "h", np.zeros(3), np.ones(3), 3.0, None, lambda t: F.normalize(t, dim=-1), "torch"
    )
    np.testing.assert_allclose(
        dense.region_descriptors(head, _Index(), [fmap], boxes), got, atol=1e-5
    )
    assert torch is not None

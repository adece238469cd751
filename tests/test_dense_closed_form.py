"""The closed-form (NumPy) contribution map equals PyTorch autograd's gradient × activation."""

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

    model = dense.DenseModel("x", "h", np.zeros(3), np.ones(3), 3.0, None, None, "onnx")
    torch_model = dense.DenseModel(
        "x", "h", np.zeros(3), np.ones(3), 3.0, None, lambda z: F.normalize(z, dim=-1), "torch"
    )
    ours, s1 = dense.contribution(model, _Index(), fmap, target)
    ref, s2 = dense.contribution(torch_model, _Index(), fmap, target)
    assert s1 == pytest.approx(s2, abs=1e-5)
    np.testing.assert_allclose(ours, ref, atol=1e-6 + 1e-4 * np.abs(ref).max())
    assert torch is not None

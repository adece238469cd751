"""The learned choice among the dense search's crops (``explain.boxrank``).

The trees are fitted with scikit-learn and stored as plain arrays: the exported trees must
predict exactly as the fitted ones and load without pickle. What the shipped ranking does on
real photos is tested in ``test_locate.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from landmark_finder.explain.boxrank import FEATURES, BoxRanker, fit


def _rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    y = np.tanh(x[:, 0] - 0.5 * x[:, 4] * x[:, 2]) + 0.1 * rng.normal(size=n)
    return x, y


def test_exported_trees_round_trip_without_pickle(tmp_path):
    x, y = _rows(600)
    ranker = fit(x, y, trees=20)  # fit() itself checks the export against scikit-learn
    path = ranker.save(tmp_path / "ranker.npz")
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert {"feature", "threshold", "left", "right", "value", "roots", "base"} <= set(z.files)
    again = BoxRanker.load(path)
    test, _ = _rows(50, seed=1)
    np.testing.assert_array_equal(again.predict(test), ranker.predict(test))


def test_a_ranking_of_other_features_is_refused(tmp_path):
    x, y = _rows(200)
    ranker = fit(x, y, trees=5)
    other = BoxRanker(**{**ranker.__dict__, "names": ("a", "b")})
    path = other.save(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="other features"):
        BoxRanker.load(path)

"""Landmark aggregation (top-k mean over reference photos) and the logistic calibrator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from landmark_finder.core.decision import AGGREGATE_K, Calibrator, LandmarkScores, aggregate

A, B, C = 0, 1, 2


def _query(pairs, row_labels):
    """(sim, row) pairs → the descending sims/rows arrays a searcher would return."""
    pairs = sorted(pairs, key=lambda p: -p[0])
    sims = np.array([p[0] for p in pairs], np.float32)
    rows = np.array([p[1] for p in pairs], np.int64)
    counts = np.bincount(row_labels, minlength=3)
    return sims, rows, counts


def _score(ls: LandmarkScores, label: int) -> float:
    return float(ls.scores[list(ls.labels).index(label)])


# ------------------------------------------------------------------------------ aggregate


def test_default_k_is_three():
    assert AGGREGATE_K == 3


def test_score_is_mean_of_top_k_similarities():
    row_labels = np.array([A, A, A, A, B, B, B])
    sims, rows, counts = _query(
        [(0.9, 0), (0.8, 1), (0.7, 2), (0.1, 3), (0.6, 4), (0.5, 5), (0.4, 6)], row_labels
    )
    ls = aggregate(sims, rows, row_labels, counts, k=3)
    assert list(ls.labels) == [A, B]
    # A's 4th photo (0.1) is outside its top 3 and must not count.
    assert ls.scores == pytest.approx([0.8, 0.5])
    assert np.all(np.diff(ls.scores) <= 0)


def test_one_lookalike_does_not_beat_three_good_matches():
    row_labels = np.array([A, A, A, B, B, B])
    pairs = [(0.95, 3), (0.80, 0), (0.79, 1), (0.78, 2), (0.30, 4), (0.29, 5)]
    sims, rows, counts = _query(pairs, row_labels)
    ls = aggregate(sims, rows, row_labels, counts, k=3)
    assert ls.labels[0] == A
    assert ls.scores[0] == pytest.approx(0.79)
    assert _score(ls, B) == pytest.approx((0.95 + 0.30 + 0.29) / 3)
    # Whereas the single nearest photo (k=1) would have picked the look-alike.
    assert aggregate(sims, rows, row_labels, counts, k=1).labels[0] == B


def test_landmark_with_fewer_than_k_photos_uses_all_it_has():
    row_labels = np.array([A, A, A, C])  # C has a single reference photo
    sims, rows, counts = _query([(0.9, 0), (0.85, 3), (0.8, 1), (0.7, 2)], row_labels)
    ls = aggregate(sims, rows, row_labels, counts, k=3)
    # C is not penalised for having one photo: its score is that photo's similarity.
    assert _score(ls, C) == pytest.approx(0.85)
    assert _score(ls, A) == pytest.approx(0.8)
    assert ls.labels[0] == C


def test_floor_padding_when_shortlist_misses_photos():
    # A has 5 reference photos, only 2 reached the shortlist; B has 2, only 1 reached it.
    row_labels = np.array([A, A, A, A, A, B, B, C, C, C])
    sims, rows, counts = _query(
        [(0.9, 0), (0.8, 1), (0.7, 5), (0.6, 7), (0.55, 8), (0.5, 9)], row_labels
    )
    ls = aggregate(sims, rows, row_labels, counts, k=3)
    floor = 0.5  # last retrieved similarity bounds every photo that was not retrieved
    assert _score(ls, A) == pytest.approx((0.9 + 0.8 + floor) / 3)
    # B needs only min(k, 2) = 2 photos.
    assert _score(ls, B) == pytest.approx((0.7 + floor) / 2)
    # C is fully retrieved: no padding.
    assert _score(ls, C) == pytest.approx((0.6 + 0.55 + 0.5) / 3)


def test_exclude_removes_landmark_and_recomputes_floor():
    row_labels = np.array([A, A, A, A, B, B, B, C])
    pairs = [(0.9, 0), (0.8, 1), (0.7, 4), (0.6, 5), (0.55, 7), (0.5, 2)]
    sims, rows, counts = _query(pairs, row_labels)
    ls = aggregate(sims, rows, row_labels, counts, k=3, exclude=A)
    assert A not in ls.labels
    assert set(ls.labels) == {B, C}
    assert _score(ls, C) == pytest.approx(0.55)
    # A's photo at 0.5 was dropped, so the floor is now C's 0.55: B = (0.7 + 0.6 + 0.55) / 3.
    assert _score(ls, B) == pytest.approx((0.7 + 0.6 + 0.55) / 3)
    # The input arrays are left untouched.
    assert len(sims) == len(pairs)


def test_exclude_of_absent_label_changes_nothing():
    row_labels = np.array([A, A, B])
    sims, rows, counts = _query([(0.9, 0), (0.8, 2), (0.7, 1)], row_labels)
    a = aggregate(sims, rows, row_labels, counts)
    b = aggregate(sims, rows, row_labels, counts, exclude=C)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.scores, b.scores)
    np.testing.assert_array_equal(a.best_rows, b.best_rows)


def test_empty_input():
    row_labels = np.array([A, B])
    ls = aggregate(np.zeros(0, np.float32), np.zeros(0, np.int64), row_labels, np.array([1, 1]))
    assert len(ls.labels) == len(ls.scores) == len(ls.best_rows) == 0
    np.testing.assert_array_equal(ls.features(), [0.0, 0.0])


def test_excluding_the_only_landmark_gives_empty():
    row_labels = np.array([A, A])
    sims, rows, counts = _query([(0.9, 0), (0.8, 1)], row_labels)
    ls = aggregate(sims, rows, row_labels, counts, exclude=A)
    assert len(ls.labels) == 0


def test_best_rows_point_at_most_similar_photo_of_each_landmark():
    # Gallery rows interleaved, and the searcher's rows are not sorted by row id.
    row_labels = np.array([B, A, C, A, B, A, C])
    pairs = [(0.91, 5), (0.90, 4), (0.85, 1), (0.80, 6), (0.75, 0), (0.70, 3), (0.60, 2)]
    sims, rows, counts = _query(pairs, row_labels)
    ls = aggregate(sims, rows, row_labels, counts, k=3)
    best = dict(zip(ls.labels.tolist(), ls.best_rows.tolist(), strict=False))
    assert best == {A: 5, B: 4, C: 6}
    for lab, row in best.items():
        assert row_labels[row] == lab


def test_best_rows_follow_score_order_not_best_photo_order():
    # B has the single most similar photo, but A wins on the top-3 mean; best_rows must be
    # permuted together with the labels.
    row_labels = np.array([A, A, A, B, B, B])
    pairs = [(0.95, 3), (0.80, 0), (0.79, 1), (0.78, 2), (0.30, 4), (0.29, 5)]
    sims, rows, counts = _query(pairs, row_labels)
    ls = aggregate(sims, rows, row_labels, counts, k=3)
    assert list(ls.labels) == [A, B]
    assert list(ls.best_rows) == [0, 3]


def test_features_values():
    ls = LandmarkScores(
        np.array([A, B, C]), np.array([0.8, 0.5, 0.1], np.float32), np.array([0, 1, 2])
    )
    f = ls.features()
    assert f.dtype == np.float64 and f.shape == (2,)
    np.testing.assert_allclose(f, [0.8, 0.3], rtol=1e-6)


def test_features_single_landmark_margin_is_its_score():
    ls = LandmarkScores(np.array([A]), np.array([0.6], np.float32), np.array([0]))
    np.testing.assert_allclose(ls.features(), [0.6, 0.6], rtol=1e-6)


# ----------------------------------------------------------------------------- Calibrator


def test_calibrator_monotone_in_score_and_margin():
    cal = Calibrator()
    s = np.linspace(-1, 1, 201)
    by_score = cal.confidence(np.stack([s, np.full_like(s, 0.1)], 1))
    by_margin = cal.confidence(np.stack([np.full_like(s, 0.7), (s + 1) / 2], 1))
    assert np.all(np.diff(by_score) >= 0) and by_score[-1] > by_score[0]
    assert np.all(np.diff(by_margin) >= 0) and by_margin[-1] > by_margin[0]
    assert np.all((by_score >= 0) & (by_score <= 1))


def test_calibrator_scalar_and_batch():
    cal = Calibrator([2.0, 3.0], -1.0)
    one = cal.confidence(np.array([0.5, 0.0]))
    assert isinstance(one, float)
    assert one == pytest.approx(0.5)  # z = 2*0.5 + 3*0 - 1 = 0
    batch = cal.confidence(np.array([[0.5, 0.0], [1.0, 1.0]]))
    assert batch.shape == (2,)
    assert batch[1] == pytest.approx(1 / (1 + np.exp(-4.0)))


def test_calibrator_extreme_inputs_do_not_overflow():
    cal = Calibrator([1e6, 1e6], 0.0)
    with np.errstate(over="raise"):
        p = cal.confidence(np.array([[1.0, 1.0], [-1.0, -1.0]]))
    assert p[0] == pytest.approx(1.0) and p[1] == pytest.approx(0.0, abs=1e-20)


def test_calibrator_round_trip_through_json():
    cal = Calibrator([np.float32(3.25), 7.5], np.float64(-2.125), threshold=0.65)
    d = cal.to_dict()
    text = json.dumps(d)  # plain JSON numbers, no numpy scalars
    back = Calibrator.from_dict(json.loads(text))
    assert back == Calibrator([3.25, 7.5], -2.125, 0.65)
    feats = np.array([[0.7, 0.1], [0.2, 0.0]])
    np.testing.assert_allclose(back.confidence(feats), cal.confidence(feats))


def test_calibrator_threshold_semantics():
    # The threshold does not change the confidence; it only decides answered (>=) vs unknown.
    feats = np.array([0.5, 0.0])  # z = 2*0.5 + 3*0 - 1 = 0 exactly → confidence exactly 0.5
    at, lo, hi = (Calibrator([2.0, 3.0], -1.0, threshold=t) for t in (0.5, 0.3, 0.9))
    assert at.confidence(feats) == lo.confidence(feats) == hi.confidence(feats) == 0.5
    assert Calibrator().threshold == 0.5
    # Rule used by the recognizer: answer when confidence >= threshold.
    assert at.confidence(feats) >= at.threshold
    assert lo.confidence(feats) >= lo.threshold
    assert not hi.confidence(feats) >= hi.threshold
    assert at.confidence(np.array([0.4, 0.0])) < at.threshold

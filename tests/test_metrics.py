"""Recognition metrics on hand-computed and synthetic examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landmark_finder.core.metrics import (
    auroc,
    coverage_at_precision,
    expected_calibration_error,
    gap,
)

# --------------------------------------------------------------------------------------- gap


def test_gap_hand_computed():
    # Ranked order = input order; precision at the correct ranks 1 and 3 is 1/1 and 2/3.
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([1, 0, 1, 0], bool)
    assert gap(correct, conf, n_known=3) == pytest.approx((1 / 1 + 2 / 3) / 3)


def test_gap_sorts_by_confidence_not_input_order():
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([1, 0, 1, 0], bool)
    perm = np.array([3, 1, 0, 2])
    assert gap(correct[perm], conf[perm], 3) == pytest.approx(gap(correct, conf, 3))


def test_gap_perfect_when_every_known_query_right():
    conf = np.array([0.2, 0.9, 0.5, 0.7])
    correct = np.ones(4, bool)
    assert gap(correct, conf, n_known=4) == pytest.approx(1.0)


def test_gap_wrong_answers_at_bottom_do_not_hurt_precision_only_recall():
    # 3 right answers ranked above 1 wrong one: precision 1 at every right one.
    conf = np.array([0.9, 0.8, 0.7, 0.1])
    correct = np.array([1, 1, 1, 0], bool)
    assert gap(correct, conf, n_known=3) == pytest.approx(1.0)
    # The wrong one was a known query that got the wrong landmark: recall 3/4.
    assert gap(correct, conf, n_known=4) == pytest.approx(0.75)


def test_gap_non_landmark_queries_ranked_above_correct_ones_lower_it():
    correct = np.array([1, 1, 0, 0], bool)  # the last two show no known landmark
    below = gap(correct, np.array([0.9, 0.8, 0.2, 0.1]), n_known=2)
    above = gap(correct, np.array([0.3, 0.2, 0.9, 0.8]), n_known=2)
    assert below == pytest.approx(1.0)
    # Ranks 3 and 4: precision 1/3 and 2/4.
    assert above == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert above < below


def test_gap_no_known_queries_is_nan():
    assert math.isnan(gap(np.zeros(3, bool), np.array([0.5, 0.4, 0.3]), n_known=0))


def test_gap_all_wrong_is_zero():
    assert gap(np.zeros(3, bool), np.array([0.5, 0.4, 0.3]), n_known=3) == 0.0


# ------------------------------------------------------------------------------------- auroc


def test_auroc_perfect_separation():
    assert auroc(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1])) == pytest.approx(1.0)


def test_auroc_inverted():
    assert auroc(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(0.0)


def test_auroc_uninformative_is_half():
    assert auroc(np.array([1, 0, 1, 0]), np.full(4, 0.5)) == pytest.approx(0.5)


@pytest.mark.parametrize("is_known", [[1, 1, 1], [0, 0, 0]])
def test_auroc_single_class_is_nan(is_known):
    assert math.isnan(auroc(np.array(is_known), np.array([0.9, 0.5, 0.1])))


# ------------------------------------------------------------------------ coverage@precision


def test_coverage_all_correct_is_full():
    conf = np.array([0.9, 0.6, 0.3])
    assert coverage_at_precision(np.ones(3, bool), conf, n_known=3) == pytest.approx(1.0)


def test_coverage_wrong_answer_at_top_is_zero():
    conf = np.array([0.99, 0.8, 0.7, 0.6])
    correct = np.array([0, 1, 1, 1], bool)
    # Precision is 0 at rank 1 and at most 3/4 afterwards: never >= 0.99.
    assert coverage_at_precision(correct, conf, n_known=4, precision=0.99) == 0.0


def test_coverage_wrong_answer_at_bottom_is_excluded():
    conf = np.array([0.9, 0.8, 0.7, 0.1])
    correct = np.array([1, 1, 1, 0], bool)
    assert coverage_at_precision(correct, conf, n_known=4, precision=0.99) == pytest.approx(0.75)
    # At a looser precision target the wrong answer can be included (3/4 >= 0.7), but it adds
    # no right answers: coverage stays 3/4.
    assert coverage_at_precision(correct, conf, n_known=4, precision=0.7) == pytest.approx(0.75)


def test_coverage_looser_target_reaches_further_down():
    # Right, right, wrong, right, right: precision 1, 1, 2/3, 3/4, 4/5.
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([1, 1, 0, 1, 1], bool)
    assert coverage_at_precision(correct, conf, 4, precision=0.99) == pytest.approx(2 / 4)
    assert coverage_at_precision(correct, conf, 4, precision=0.8) == pytest.approx(4 / 4)


def test_coverage_no_known_queries_is_nan():
    assert math.isnan(coverage_at_precision(np.zeros(2, bool), np.array([0.5, 0.4]), 0))


# ----------------------------------------------------------------------------------------- ECE


def test_ece_perfectly_calibrated_is_near_zero():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 200_000)
    correct = rng.uniform(0, 1, conf.shape) < conf
    assert expected_calibration_error(correct, conf) < 0.01


def test_ece_over_confident_is_large():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.9, 1.0, 10_000)
    correct = rng.uniform(0, 1, conf.shape) < 0.5  # right only half the time
    assert expected_calibration_error(correct, conf) == pytest.approx(0.45, abs=0.02)


def test_ece_hand_computed():
    # Bin [0.2, 0.3): conf 0.25, acc 0 → 0.25; bin [0.9, 1.0]: conf 0.95 & 1.0, acc 1 → 0.025.
    conf = np.array([0.25, 0.95, 1.0])
    correct = np.array([0, 1, 1], bool)
    assert expected_calibration_error(correct, conf) == pytest.approx((0.25 + 2 * 0.025) / 3)


def test_ece_empty_is_nan():
    assert math.isnan(expected_calibration_error(np.zeros(0, bool), np.zeros(0)))

"""Recognition metrics, as pure functions of per-query outcomes."""

from __future__ import annotations

import numpy as np


def gap(correct: np.ndarray, confidence: np.ndarray, n_known: int) -> float:
    """Global Average Precision (micro-AP) of the Google Landmarks v2 recognition challenge.

    One prediction per query, sorted by confidence; ``correct[i]`` is whether query i's
    prediction is right (always False for queries without a known landmark). Normalised by the
    number of queries that do show a known landmark.
    """
    if n_known == 0:
        return float("nan")
    order = np.argsort(-np.asarray(confidence), kind="stable")
    c = np.asarray(correct, float)[order]
    precision = np.cumsum(c) / np.arange(1, len(c) + 1)
    return float((precision * c).sum() / n_known)


def auroc(is_known: np.ndarray, confidence: np.ndarray) -> float:
    """Area under the ROC curve of confidence separating known-landmark from other queries."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(is_known, bool)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, confidence))


def coverage_at_precision(
    correct: np.ndarray, confidence: np.ndarray, n_known: int, precision: float = 0.99
) -> float:
    """Share of known-landmark queries answered when answering only as far down the confidence
    ranking as precision stays >= ``precision`` (the most confident answers first)."""
    if n_known == 0:
        return float("nan")
    order = np.argsort(-np.asarray(confidence), kind="stable")
    c = np.asarray(correct, float)[order]
    prec = np.cumsum(c) / np.arange(1, len(c) + 1)
    ok = np.flatnonzero(prec >= precision)
    return float(c[: ok[-1] + 1].sum() / n_known) if len(ok) else 0.0


def expected_calibration_error(
    correct: np.ndarray, confidence: np.ndarray, bins: int = 10
) -> float:
    """Mean |confidence − accuracy| over equal-width confidence bins, weighted by bin size."""
    conf = np.asarray(confidence, float)
    c = np.asarray(correct, float)
    if len(conf) == 0:
        return float("nan")
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(conf[m].mean() - c[m].mean())
    return float(total / len(conf))

"""The core issue's acceptance bar on real photos (quality only; timing lives in bench/).

Index: Indian-monuments gallery + catalog, nothing else (no distractors, so no photo used to
evaluate is used to calibrate). Queries: queries/, unseen/ (a catalogued landmark without
photos: must be "unknown") and the non-landmark distractors. About a minute on 2 cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHARED, need_shared
from landmark_finder.catalog import load_catalog
from landmark_finder.evaluate import evaluate
from landmark_finder.indexing import build_index
from landmark_finder.recognizer import Recognizer


@pytest.fixture(scope="module")
def full_recognizer(tmp_path_factory) -> Recognizer:
    im = need_shared()
    out = tmp_path_factory.mktemp("bench") / "index"
    build_index(im / "gallery", out, load_catalog(im / "catalog.csv"))
    return Recognizer.open(out)


def test_indian_monuments_benchmark(full_recognizer: Recognizer):
    im = need_shared()
    result, details = evaluate(full_recognizer, [im / "queries", im / "unseen", SHARED / "distractors"])
    assert (result.n_known, result.n_unknown) == (802, 150)
    assert result.top1_accuracy >= 0.95
    assert result.gap >= 0.94
    assert result.auroc >= 0.96
    # calibrated: answers given are right about as often as their confidence says
    assert details.ece <= 0.10
    assert details.answered_precision >= 0.97
    # the unseen landmark and the everyday photos are (almost) never given a landmark name
    assert details.unknown_answered <= 3

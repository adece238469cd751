"""The acceptance bars on real photos (quality only; timing lives in bench/).

Index: Indian-monuments gallery + catalog, nothing else (no distractors, so no photo used to
evaluate is used to calibrate). Queries: queries/, unseen/ (a catalogued landmark without
photos: must be "unknown") and the non-landmark distractors. Evaluated with global
descriptors alone (the core bar) and with geometric verification (its bar: at least as good
on every metric, fewer confusions among the Qutb complex's look-alikes).

The global bar runs by default on an index without keypoints (about a minute on 2 cores); the
verification bar needs the keypoints and the verified model of the whole gallery (about 4
minutes more), so it is marked slow (`make test-slow`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHARED, need_shared
from landmark_finder.core.catalog import load_catalog
from landmark_finder.recognition.evaluate import evaluate
from landmark_finder.recognition.indexing import IndexConfig, build_index
from landmark_finder.recognition.recognizer import Recognizer


def _recognizer(tmp_path_factory, config: IndexConfig) -> Recognizer:
    im = need_shared()
    out = tmp_path_factory.mktemp("bench") / "index"
    build_index(im / "gallery", out, load_catalog(im / "catalog.csv"), config)
    return Recognizer.open(out)


@pytest.fixture(scope="module")
def full_recognizer(tmp_path_factory) -> Recognizer:
    """The default index: global descriptors, keypoints and the verified model."""
    return _recognizer(tmp_path_factory, IndexConfig())


QUTB = {"qutub_minar", "alai_minar", "alai_darwaza", "iron_pillar"}


def _queries() -> list[Path]:
    im = need_shared()
    return [im / "queries", im / "unseen", SHARED / "distractors"]


def _group_confusions(details) -> int:
    tops = [(t, r.candidates[0].landmark.id) for _, t, r in details.outcomes if r.candidates]
    return sum(t in QUTB and top in QUTB and top != t for t, top in tops)


def test_indian_monuments_benchmark(tmp_path_factory):
    rec = _recognizer(tmp_path_factory, IndexConfig(local=None))  # global descriptors only
    assert not rec.verify
    result, details = evaluate(rec, _queries())
    assert (result.n_known, result.n_unknown) == (802, 150)
    assert result.top1_accuracy >= 0.95
    assert result.gap >= 0.94
    assert result.auroc >= 0.96
    # calibrated: answers given are right about as often as their confidence says
    assert details.ece <= 0.10
    assert details.answered_precision >= 0.97
    # the unseen landmark and the everyday photos are (almost) never given a landmark name
    assert details.unknown_answered <= 3


@pytest.mark.slow
def test_verification_benchmark(full_recognizer: Recognizer):
    assert full_recognizer.verify
    index, extractor = full_recognizer.index, full_recognizer.extractor
    always = Recognizer(index, extractor, always_verify=True)
    result, details = evaluate(always, _queries())
    rec = Recognizer(index, extractor, verify=False)
    base, base_details = evaluate(rec, _queries())
    assert (result.n_known, result.n_unknown) == (802, 150)
    assert result.top1_accuracy >= max(0.96, base.top1_accuracy)
    assert result.gap >= max(0.95, base.gap)
    assert result.auroc >= max(0.97, base.auroc)
    assert details.unknown_answered <= base_details.unknown_answered  # no chance-match answers
    before, after = _group_confusions(base_details), _group_confusions(details)
    print(f"Qutb-complex confusions: {before} without verification, {after} with")
    assert after <= before * 2 / 3


@pytest.mark.slow
def test_skipping_certain_answers_keeps_the_verified_figures(full_recognizer: Recognizer):
    """The default verifies only photos whose global answer is not already certain: a minority
    of them, with every figure within 0.005 of verifying all."""
    assert not full_recognizer.always_verify
    skip, skip_details = evaluate(full_recognizer, _queries())
    index, extractor = full_recognizer.index, full_recognizer.extractor
    full, _ = evaluate(Recognizer(index, extractor, always_verify=True), _queries())
    assert skip_details.verification_rate < 0.5
    for name in ("top1_accuracy", "gap", "auroc", "coverage_at_99_precision"):
        assert getattr(skip, name) >= getattr(full, name) - 0.005, name

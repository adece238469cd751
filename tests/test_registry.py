"""Every choice by name goes through one registry and fails with the same one-line message."""

from __future__ import annotations

import numpy as np
import pytest

from landmark_finder.core.search import SEARCHES, ApproximateSearch, ExactSearch
from landmark_finder.errors import BackboneError
from landmark_finder.registry import Registry
from landmark_finder.verify.keypoints import DETECTORS, METHODS, LocalConfig


def test_unknown_name_says_what_is_accepted():
    colours: Registry = Registry("colour")
    colours.register("red")(lambda: "r")
    colours.register("blue")(lambda: "b")
    assert colours.names() == ("red", "blue") and "red" in colours
    assert colours.get("blue")() == "b"
    with pytest.raises(ValueError, match=r"^unknown colour 'green'; choose one of red, blue$"):
        colours.get("green")
    strict: Registry = Registry("backbone", BackboneError)
    with pytest.raises(BackboneError):
        strict.check("x")


def test_keypoint_methods_are_the_registered_detectors():
    assert METHODS == DETECTORS.names() == ("sift", "orb")
    with pytest.raises(ValueError, match="unknown local feature method 'surf'; choose one of sift"):
        LocalConfig("surf")


def test_losses_listed_for_the_cli_are_the_registered_ones():
    pytest.importorskip("torch")
    from landmark_finder.training.config import LOSSES
    from landmark_finder.training.heads import LOSS_FACTORIES, make_loss

    assert LOSS_FACTORIES.names() == LOSSES
    assert make_loss("subcenter-arcface", 8, 3).k == 3
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; choose one of arcface, "):
        make_loss("hinge", 8, 3)


def test_searches_by_name(tmp_path):
    vecs = np.eye(4, dtype=np.float32)
    assert isinstance(SEARCHES.get("exact")(vecs, None), ExactSearch)
    pytest.importorskip("faiss")
    ann = SEARCHES.get("approximate")(vecs, tmp_path / "missing.faiss")
    assert isinstance(ann, ApproximateSearch)
    assert ann.search(vecs[:1], 1)[1][0, 0] == 0

"""Index round trip, incremental updates, atomic writes and compatibility checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import INDIAN, SMALL_LANDMARKS
from landmark_finder.errors import IndexVersionError
from landmark_finder.recognition import index as index_mod
from landmark_finder.recognition import store
from landmark_finder.recognition.index import FORMAT_VERSION, Index, LandmarkIndexError
from landmark_finder.recognition.indexing import WriteOptions, add_photos, remove_photos
from landmark_finder.recognition.recognizer import Recognizer


def _copy(index: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "index"
    shutil.copytree(index, dst)
    return dst


def _manifest(root: Path) -> Path:
    return root / (root / "CURRENT").read_text().strip()


def test_round_trip(small_index: Path):
    idx = Index.open(small_index)
    assert idx.backbone == "efficientnet-lite0"
    assert len(idx.weights_hash) == 64
    assert idx.preprocessing.size == 224
    assert len(idx.records) == len(idx.descriptors) == 5 * 8
    assert idx.landmark_ids == sorted(SMALL_LANDMARKS)
    # the catalog snapshot keeps rows without photos: listed, never predicted
    assert "lotus_temple" in idx.catalog and "lotus_temple" not in idx.landmark_ids
    assert idx.catalog["taj_mahal"].latitude == pytest.approx(27.1751, abs=1e-3)
    assert all(len(r.sha256) == 64 for r in idx.records)
    np.testing.assert_allclose(np.linalg.norm(idx.descriptors, axis=1), 1.0, atol=1e-4)
    meta = json.loads(_manifest(small_index).read_text())
    assert meta["format_version"] == FORMAT_VERSION
    assert {"backbone", "weights_hash", "preprocessing", "calibrator"} <= set(meta)


def test_recognizes_a_gallery_landmark_from_a_query(small_index: Path):
    rec = Recognizer.open(small_index)
    q = sorted((INDIAN / "queries" / "charminar").glob("*.jpg"))[0]
    r = rec.recognize(q)
    assert r.status in ("recognized", "unknown")
    assert r.candidates[0].landmark.id == "charminar"
    assert 0.0 <= r.confidence <= 1.0
    assert Path(r.candidates[0].reference).exists()


@pytest.mark.slow  # two refits of the verified model; test_segments covers add/remove by default
def test_add_and_remove_landmark(small_index: Path, tmp_path: Path):
    root = _copy(small_index, tmp_path)
    new = sorted((INDIAN / "gallery" / "mysore_palace").glob("*.jpg"))[:6]
    report = add_photos(root, [("mysore_palace", p) for p in new])
    idx = Index.open(root)
    assert "mysore_palace" in idx.landmark_ids and report.n_photos == 46
    assert idx.catalog["mysore_palace"].name == "Mysore Palace"  # catalog row already there
    # adding the same photos again changes nothing: duplicates are recognised by content
    report = add_photos(root, [("mysore_palace", p) for p in new])
    assert report.n_photos == 46 and len(report.skipped) == 6
    q = sorted((INDIAN / "queries" / "mysore_palace").glob("*.jpg"))[0]
    assert Recognizer.open(root).recognize(q).candidates[0].landmark.id == "mysore_palace"

    n, _ = remove_photos(root, landmarks=["mysore_palace"])
    assert n == 6
    idx = Index.open(root)
    assert "mysore_palace" not in idx.landmark_ids and "mysore_palace" in idx.catalog
    n, _ = remove_photos(root, photos=[Path(idx.records[0].path)])
    assert n == 1 and len(Index.open(root).records) == 39
    with pytest.raises(LandmarkIndexError, match="no photos of landmark"):
        remove_photos(root, landmarks=["nowhere"])


@pytest.mark.slow  # an add with a refit of the verified model
def test_new_landmark_without_catalog_row_gets_folder_name(small_index: Path, tmp_path: Path):
    root = _copy(small_index, tmp_path)
    photos = sorted((INDIAN / "gallery" / "khajuraho").glob("*.jpg"))[:3]
    report = add_photos(root, [("my_temple", p) for p in photos])
    assert any("my_temple" in w for w in report.warnings)
    assert Index.open(root).catalog["my_temple"].name == "my_temple"


@pytest.mark.slow  # test_segments kills a real writer with kill -9 by default
def test_crash_mid_write_keeps_previous_index(small_index: Path, tmp_path: Path, monkeypatch):
    root = _copy(small_index, tmp_path)
    before = Index.open(root)

    def boom(*a, **k):
        raise OSError("disk full")

    # crash while writing the catalog (after the new segment was written) ...
    monkeypatch.setattr(index_mod, "save_catalog", boom)
    photos = sorted((INDIAN / "gallery" / "khajuraho").glob("*.jpg"))[:3]
    with pytest.raises(OSError):
        add_photos(root, [("khajuraho", p) for p in photos], options=WriteOptions(workers=1))
    monkeypatch.undo()
    # ... and while swapping CURRENT
    monkeypatch.setattr(store.os, "replace", boom)
    with pytest.raises(OSError):
        add_photos(root, [("khajuraho", p) for p in photos], options=WriteOptions(workers=1))
    monkeypatch.undo()

    after = Index.open(root)
    assert [r.path for r in after.records] == [r.path for r in before.records]
    np.testing.assert_array_equal(after.descriptors, before.descriptors)
    # debris of a killed writer (dead pid) is cleaned up by the next write
    debris = root / "segments" / ".tmp-999999999-debris"
    debris.mkdir()
    (debris / "descriptors.npy").write_bytes(b"partial")
    add_photos(root, [("khajuraho", p) for p in photos], options=WriteOptions(workers=1))
    assert not debris.exists()
    idx = Index.open(root)
    live = {s.name for s in idx.segments}
    assert {p.name for p in (root / "segments").iterdir()} == live  # orphans removed
    assert len(idx.records) == len(before.records) + 3


def test_newer_format_is_refused(small_index: Path, tmp_path: Path):
    root = _copy(small_index, tmp_path)
    path = _manifest(root)
    meta = json.loads(path.read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(meta))
    with pytest.raises(IndexVersionError, match="newer than this landmark-finder supports"):
        Index.open(root)


def test_other_backbone_or_weights_are_refused(small_index: Path, tmp_path: Path):
    with pytest.raises(LandmarkIndexError, match="built with backbone 'efficientnet-lite0'"):
        Recognizer.open(small_index, backbone="efficientnet-lite2")
    root = _copy(small_index, tmp_path)
    meta_path = _manifest(root)
    meta = json.loads(meta_path.read_text())
    meta["weights_hash"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(LandmarkIndexError, match="rebuild the index"):
        Recognizer.open(root)


def test_not_an_index(tmp_path: Path):
    with pytest.raises(LandmarkIndexError, match="not a landmark-finder index"):
        Index.open(tmp_path)


@pytest.mark.slow  # builds a second (HNSW) index of the small gallery
def test_approximate_index_matches_exact(small_gallery: Path, small_index: Path, tmp_path: Path):
    from landmark_finder.core.descriptors import Preprocessing
    from landmark_finder.recognition.indexing import IndexConfig, build_index

    out = tmp_path / "ann"
    build_index(
        small_gallery,
        out,
        None,
        IndexConfig("efficientnet-lite0", Preprocessing(size=224), approximate=True),
    )
    assert Index.open(out)._ann_path.exists()
    exact, approx = Recognizer.open(small_index), Recognizer.open(out)
    for lid in SMALL_LANDMARKS:
        q = sorted((INDIAN / "queries" / lid).glob("*.jpg"))[0]
        assert (
            approx.recognize(q).candidates[0].landmark.id
            == exact.recognize(q).candidates[0].landmark.id
        )

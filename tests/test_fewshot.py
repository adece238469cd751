"""Few-shot recognition: views (crops) on both sides of the search, and sites of landmarks that
stand together. Real photos, the fast backbone, galleries of 3 photos per landmark."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import INDIAN, link_gallery, need_shared

QUTB = ["qutub_minar", "iron_pillar", "alai_darwaza"]


@pytest.fixture(scope="module")
def views_index(tmp_path_factory) -> Path:
    """3 photos each of 4 landmarks, three of them in one site, indexed with crops."""
    from landmark_finder.core.catalog import Catalog, load_catalog
    from landmark_finder.core.descriptors import Preprocessing
    from landmark_finder.recognition.indexing import IndexConfig, build_index

    need_shared()
    gallery = link_gallery(tmp_path_factory.mktemp("g"), [*QUTB, "taj_mahal"], 3)
    cat = load_catalog(INDIAN / "catalog.csv")
    cat = Catalog([replace(lm, site="Qutb complex") if lm.id in QUTB else lm for lm in cat])
    out = tmp_path_factory.mktemp("idx") / "index"
    build_index(
        gallery,
        out,
        cat,
        IndexConfig("efficientnet-lite0", Preprocessing(size=224, views="crops"), local=None),
    )
    return out


def _query(lid: str) -> Path:
    return sorted((INDIAN / "queries" / lid).glob("*.jpg"))[0]


def test_views_are_stored_and_used_on_both_sides(views_index: Path):
    from landmark_finder.recognition.index import Index
    from landmark_finder.recognition.recognizer import Recognizer

    idx = Index.open(views_index)
    assert idx.preprocessing.views == "crops" and idx.n_views == 6
    assert idx.views.shape == (12, 5, idx.descriptors.shape[1])
    # whitening was fitted on every view; the search holds one vector per view
    assert idx.project(idx.grid()).shape[:2] == (12, 6)
    from landmark_finder.core.images import load_image

    rec = Recognizer.open(views_index)
    img_views = rec.describe_views(load_image(_query("taj_mahal"), max_side=rec.load_side))
    assert img_views.shape == (6, idx.project(idx.descriptors[:1]).shape[1])
    r = rec.recognize(_query("taj_mahal"))
    assert r.candidates[0].landmark.id == "taj_mahal"
    assert r.site is None  # the Taj Mahal stands alone
    # a few-shot subset keeps each photo's views
    sub = idx.subset(np.array([0, 3, 6, 9]))
    assert sub.views.shape[0] == 4 and sub.n_views == 6


def test_a_site_member_answer_names_the_site_and_its_members(views_index: Path):
    from landmark_finder.recognition.recognizer import Recognizer

    rec = Recognizer.open(views_index)
    r = rec.recognize(_query("qutub_minar"))
    top = r.candidates[0].landmark.id
    assert top in QUTB
    assert r.site is not None and r.site.name == "Qutb complex"
    assert sorted(r.site.members) == sorted(QUTB) and r.site.members[0] == top
    assert r.site.confidence >= r.confidence  # the site is right whenever the member is
    d = json.loads(json.dumps(r.to_dict()))
    assert d["site"]["name"] == "Qutb complex" and d["site"]["members"][0] == top
    assert r.status in ("recognized", "site", "unknown")
    if r.status == "site":
        assert d["landmark"]["id"] == top


def test_site_logic_on_rankings():
    from landmark_finder.core.decision import LandmarkScores
    from landmark_finder.core.sites import NO_SITE, merge_site, rival_features, site_ids

    ids = ["a", "b", "c", "d"]
    sites = site_ids(ids, {"a": "S", "b": "S", "c": "", "d": "T"})  # T has one member: no site
    assert list(sites) == [0, 0, NO_SITE, NO_SITE]
    ls = LandmarkScores(
        np.array([1, 0, 2]), np.array([0.8, 0.7, 0.4]), np.array([5, 1, 9]), np.array([40, 30, 0])
    )
    assert rival_features(ls, sites, chance=10.0) == [1.0, pytest.approx(np.log1p(20.0))]
    merged = merge_site(ls, sites)
    assert list(merged.labels) == [1, 2]  # the margin is now to the best landmark outside
    assert merged.features()[1] == pytest.approx(0.4)
    alone = LandmarkScores(np.array([2, 1]), np.array([0.8, 0.7]), np.array([9, 5]))
    assert rival_features(alone, sites) == [0.0, 0.0] and merge_site(alone, sites) is alone


def test_indexes_written_before_views_and_sites_still_work():
    from landmark_finder.core.decision import Calibrator
    from landmark_finder.core.descriptors import Preprocessing

    old = {"size": 352, "gem_p": 3.0, "flip": False, "scales": [1.0]}
    assert Preprocessing.from_dict(old).views == "full"
    cal = Calibrator([20.0, 20.0], -14.0)
    # extra (site) features beyond the stored model's are ignored
    assert cal.confidence(np.array([0.8, 0.1, 1.0, 3.0])) == cal.confidence(np.array([0.8, 0.1]))


def test_unknown_view_set_is_a_one_line_error(tmp_path: Path):
    from typer.testing import CliRunner

    from landmark_finder.cli.main import app

    need_shared()
    res = CliRunner().invoke(
        app,
        ["index", "build", str(INDIAN / "gallery"), "--out", str(tmp_path / "i"), "--views", "x"],
    )
    assert res.exit_code != 0
    assert "unknown view set 'x'" in res.output and "Traceback" not in res.output


def test_views_follow_add_remove_and_compact(views_index: Path, tmp_path: Path):
    """Crop views are one model file of the index: rewritten whole on add, kept in step with
    the photo rows by remove (tombstones) and compact."""
    import shutil

    from landmark_finder.recognition.index import Index
    from landmark_finder.recognition.indexing import WriteOptions, add_photos, remove_photos
    from landmark_finder.recognition.maintenance import compact_index

    root = tmp_path / "index"
    shutil.copytree(views_index, root)
    before = Index.open(root)
    new = sorted((INDIAN / "gallery" / "taj_mahal").glob("*.jpg"))[3:5]
    add_photos(root, [("taj_mahal", p) for p in new], options=WriteOptions(1, refit=False))
    idx = Index.open(root)
    assert idx.views.shape == (14, 5, idx.descriptors.shape[1])
    np.testing.assert_allclose(idx.views[:12], before.views, atol=1e-3)  # float16 on disk
    assert idx.grid().shape == (14, 6, idx.descriptors.shape[1])
    dropped = before.records[4].path
    remove_photos(root, photos=[Path(dropped)], options=WriteOptions(1, refit=False))
    idx = Index.open(root)
    assert len(idx.views) == len(idx.records) == 13
    assert dropped not in [r.path for r in idx.records]
    np.testing.assert_allclose(idx.views[4:11], before.views[5:12], atol=1e-3)  # row 4 gone
    kept = idx.views.copy()
    compact_index(root)
    after = Index.open(root)
    np.testing.assert_array_equal(after.views, kept)
    assert len(after.segments) == 1 and after.negatives is not None

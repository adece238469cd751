"""Shared fixtures: real photos from ../shared/landmarks and a small index built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "landmarks"
INDIAN = SHARED / "indian-monuments"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Exported ONNX graphs go to a per-run cache, so tests never depend on a user's cache."""
    os.environ["LANDMARK_FINDER_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


def need_shared() -> Path:
    if not INDIAN.is_dir():
        pytest.skip("../shared/landmarks is not present")
    return INDIAN


SMALL_LANDMARKS = ["taj_mahal", "charminar", "india_gate", "golden_temple", "hawa_mahal"]


@pytest.fixture(scope="session")
def small_gallery(tmp_path_factory) -> Path:
    """8 photos each of 5 landmarks, linked from the shared set (never copied into the repo)."""
    return link_gallery(tmp_path_factory.mktemp("gallery"), SMALL_LANDMARKS, 8)


def link_gallery(root: Path, landmarks, n: int) -> Path:
    """A gallery folder at ``root``: the first ``n`` shared gallery photos of each landmark,
    as symlinks."""
    src = need_shared() / "gallery"
    for lid in landmarks:
        (root / lid).mkdir()
        for p in sorted((src / lid).glob("*.jpg"))[:n]:
            (root / lid / p.name).symlink_to(p)
    return root


@pytest.fixture(scope="session")
def small_index(small_gallery, tmp_path_factory) -> Path:
    """An index of the small gallery with the fast backbone (Lite0 at 224 px)."""
    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.core.descriptors import Preprocessing
    from landmark_finder.recognition.indexing import IndexConfig, build_index

    out = tmp_path_factory.mktemp("idx") / "index"
    build_index(
        small_gallery,
        out,
        load_catalog(INDIAN / "catalog.csv"),
        IndexConfig("efficientnet-lite0", Preprocessing(size=224)),
    )
    return out


def assert_png(path, min_side: int = 100) -> None:
    """``path`` is a complete, decodable PNG at least ``min_side`` pixels on each side."""
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG"
        im.verify()
    with Image.open(path) as im:
        im.load()
        assert min(im.size) >= min_side


def learned_codes(index) -> list:
    """What a compressed search's faiss index learned: its rotation, PQ codebooks and
    quantiser ranges (arrays to compare)."""
    import faiss

    from landmark_finder.core.search import _unwrap

    inner, transforms = _unwrap(index)
    base = faiss.downcast_index(inner.base_index)
    fine = faiss.downcast_index(inner.refine_index)
    return [faiss.vector_to_array(t.A) for t in transforms] + [
        faiss.vector_to_array(base.pq.centroids),
        faiss.vector_to_array(fine.sq.trained),
    ]

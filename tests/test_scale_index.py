"""An index past the compressed-search threshold: written with its compressed search (codes +
float16 vectors as model files), reopened without re-training, vectors memory-mapped, and the
shortlist the recognizer gets re-scored exactly. The threshold is lowered so the test is small."""

from __future__ import annotations

import numpy as np
import pytest

from landmark_finder.core import search as search_mod
from landmark_finder.core.catalog import Catalog
from landmark_finder.core.descriptors import Preprocessing
from landmark_finder.core.search import CompressedSearch, ExactSearch
from landmark_finder.recognition import index as index_mod
from landmark_finder.recognition.index import Index, PhotoRecord

N, D = 3000, 64


@pytest.fixture
def big_index(tmp_path, monkeypatch):
    monkeypatch.setattr(index_mod, "COMPRESSED_MIN", 2000)
    monkeypatch.setattr(search_mod, "COMPRESSED_MIN", 2000)
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(100, D))
    labels = rng.integers(0, 100, N)
    desc = centres[labels] + 0.6 * rng.normal(size=(N, D))
    desc = (desc / np.linalg.norm(desc, axis=1, keepdims=True)).astype(np.float32)
    records = [
        PhotoRecord(f"lm{lab}", f"/photos/{i}.jpg", f"{i:064x}") for i, lab in enumerate(labels)
    ]
    cat, _ = Catalog().with_gallery({r.landmark_id for r in records})
    idx = Index("test", "0" * 16, Preprocessing(), desc, records, cat, whiten=False)
    idx.save(tmp_path / "index")
    return tmp_path / "index", desc


def test_index_past_threshold_persists_and_reopens_compressed_search(big_index):
    root, desc = big_index
    names = [p.name for p in (root / "model").iterdir()]
    assert any(n.startswith("ann-") and n.endswith(".faiss") for n in names)
    assert any(n.startswith("ann-vectors-") and n.endswith(".npy") for n in names)

    idx = Index.open(root)
    assert idx.search_kind.startswith("compressed")
    s = idx.searcher
    assert isinstance(s, CompressedSearch)
    assert isinstance(s.vectors, np.memmap) and s.vectors.dtype == np.float16

    q = desc[:100] + 0.05 * np.random.default_rng(8).normal(size=(100, D)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    sims, rows = s.search(q, 50)
    ex_sims, ex_rows = ExactSearch(idx.descriptors).search(q, 50)
    assert (rows[:, 0] == ex_rows[:, 0]).mean() >= 0.99
    np.testing.assert_allclose(sims[:, 0], ex_sims[:, 0], atol=2e-3)  # float16 vectors


def test_changed_rows_rebuild_the_compressed_search(big_index):
    root, desc = big_index
    idx = Index.open(root)
    before = idx.searcher
    idx.keep_rows(list(range(2500)))
    after = idx.searcher
    assert after is not before and isinstance(after, CompressedSearch)
    assert after.index.ntotal == 2500

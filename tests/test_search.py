"""Exact and approximate (faiss HNSW) nearest-neighbour search over unit vectors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import learned_codes
from landmark_finder.core.search import (
    ApproximateSearch,
    CompressedConfig,
    CompressedSearch,
    ExactSearch,
    read_compressed,
)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return _unit(rng.normal(size=(2000, 64))), _unit(rng.normal(size=(200, 64)))


# ------------------------------------------------------------------------------ exact


def test_exact_matches_brute_force(data):
    gallery, queries = data
    sims, rows = ExactSearch(gallery).search(queries, 10)
    assert sims.shape == rows.shape == (len(queries), 10)
    assert rows.dtype == np.int64
    full = queries @ gallery.T
    expected_rows = np.argsort(-full, axis=1)[:, :10]
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(sims, np.take_along_axis(full, rows, 1), rtol=1e-5)
    assert np.all(np.diff(sims, axis=1) <= 0)  # descending


def test_exact_hand_example():
    gallery = np.eye(4, dtype=np.float32)
    q = np.array([0.1, 0.7, 0.0, 0.4], np.float32)
    sims, rows = ExactSearch(gallery).search(q[None], 3)
    np.testing.assert_array_equal(rows, [[1, 3, 0]])
    np.testing.assert_allclose(sims, [[0.7, 0.4, 0.1]])


def test_exact_single_vector_query():
    gallery = np.eye(3, dtype=np.float32)
    sims, rows = ExactSearch(gallery).search(np.array([0.0, 0.0, 1.0], np.float32), 2)
    assert sims.shape == (1, 2)
    assert rows[0, 0] == 2 and sims[0, 0] == pytest.approx(1.0)


def test_exact_finds_itself(data):
    gallery, _ = data
    sims, rows = ExactSearch(gallery).search(gallery[:50], 1)
    np.testing.assert_array_equal(rows[:, 0], np.arange(50))
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)


def test_exact_k_larger_than_gallery():
    rng = np.random.default_rng(1)
    gallery = _unit(rng.normal(size=(5, 8)))
    sims, rows = ExactSearch(gallery).search(_unit(rng.normal(size=(3, 8))), 200)
    assert sims.shape == rows.shape == (3, 5)
    for r in rows:
        assert sorted(r.tolist()) == list(range(5))  # every row exactly once
    assert np.all(np.diff(sims, axis=1) <= 0)


def test_exact_k_zero():
    gallery = np.eye(4, dtype=np.float32)
    sims, rows = ExactSearch(gallery).search(np.eye(4, dtype=np.float32)[:2], 0)
    assert sims.shape == rows.shape == (2, 0)
    assert rows.dtype == np.int64


def test_exact_empty_gallery():
    sims, rows = ExactSearch(np.zeros((0, 8), np.float32)).search(np.ones((3, 8), np.float32), 5)
    assert sims.shape == rows.shape == (3, 0)


def test_exact_duplicate_vectors_each_returned_once():
    # Duplicate gallery vectors: both must be returned, neither twice.
    gallery = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    sims, rows = ExactSearch(gallery).search(np.array([[1, 0]], np.float32), 2)
    assert sorted(rows[0].tolist()) == [0, 1]
    np.testing.assert_allclose(sims, [[1.0, 1.0]])


# ------------------------------------------------------------------------------ approximate


@pytest.fixture(scope="module")
def hnsw(data):
    return ApproximateSearch.build(data[0])


def test_approximate_recall_at_1(data, hnsw):
    gallery, queries = data
    _, exact = ExactSearch(gallery).search(queries, 1)
    sims, rows = hnsw.search(queries, 1)
    recall = float((rows[:, 0] == exact[:, 0]).mean())
    assert recall >= 0.95
    assert rows.dtype == np.int64


def test_approximate_results_sorted_and_consistent(data, hnsw):
    gallery, queries = data
    sims, rows = hnsw.search(queries[:20], 10)
    assert sims.shape == rows.shape == (20, 10)
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    # Reported similarities are the true inner products of the returned rows.
    true = np.einsum("qd,qkd->qk", queries[:20], gallery[rows])
    np.testing.assert_allclose(sims, true, atol=1e-4)


def test_approximate_k_larger_than_gallery():
    rng = np.random.default_rng(2)
    gallery = _unit(rng.normal(size=(7, 16)))
    sims, rows = ApproximateSearch.build(gallery).search(_unit(rng.normal(size=(2, 16))), 50)
    assert rows.shape[1] <= 7 and (rows >= 0).all()
    assert rows.shape[1] == 7  # a tiny graph is searched exhaustively


def test_approximate_write_read_round_trip(data, hnsw, tmp_path):
    _, queries = data
    path = tmp_path / "gallery.hnsw"
    hnsw.write(path)
    assert path.exists() and path.stat().st_size > 0
    back = ApproximateSearch.read(path)
    assert back.index.ntotal == hnsw.index.ntotal
    s1, r1 = hnsw.search(queries, 5)
    s2, r2 = back.search(queries, 5)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(s1, s2)


def test_approximate_k_zero_returns_empty():
    gallery = _unit(np.random.default_rng(3).normal(size=(10, 8)))
    sims, rows = ApproximateSearch.build(gallery).search(gallery[:2], 0)
    assert sims.shape == rows.shape == (2, 0)


# ------------------------------------------------------------------------------ compressed


@pytest.fixture(scope="module")
def clustered():
    """Unit vectors in tight clusters (like photos of landmarks) and queries near them."""
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(200, 64))
    gallery = _unit(centres[rng.integers(0, 200, 8_000)] + 0.7 * rng.normal(size=(8_000, 64)))
    queries = _unit(centres[rng.integers(0, 200, 200)] + 0.7 * rng.normal(size=(200, 64)))
    return gallery, queries


@pytest.fixture(scope="module")
def compressed(clustered):
    return CompressedSearch.build(clustered[0], CompressedConfig(scan_bytes=16))


def test_compressed_shortlist_matches_exact(clustered, compressed):
    gallery, queries = clustered
    ex_sims, ex_rows = ExactSearch(gallery).search(queries, 50)
    sims, rows = compressed.search(queries, 50)
    assert sims.shape == rows.shape == (200, 50) and rows.dtype == np.int64
    assert (rows[:, 0] == ex_rows[:, 0]).mean() >= 0.99
    recall = np.mean([len(np.intersect1d(a, b)) / 50 for a, b in zip(rows, ex_rows, strict=True)])
    assert recall >= 0.95
    # Similarities are re-scored exactly: true inner products, sorted, not PQ estimates.
    np.testing.assert_allclose(sims, np.einsum("qd,qkd->qk", queries, gallery[rows]), atol=1e-5)
    assert np.all(np.diff(sims, axis=1) <= 0)
    assert len(set(rows[0].tolist())) == 50


def test_compressed_index_holds_codes_not_vectors(clustered, compressed):
    import faiss

    gallery, _ = clustered
    ram = faiss.serialize_index(compressed.index).nbytes
    # A 16-byte scan code and a 48-byte 6-bit refine code per reference plus the codebooks;
    # the float32 vectors (256 bytes each) are not in the faiss index.
    assert ram < 0.3 * gallery.nbytes


def test_compressed_write_read_memory_maps_vectors(clustered, compressed, tmp_path):
    _, queries = clustered
    compressed.write(tmp_path / "ann.faiss", tmp_path / "vectors.npy")
    back = CompressedSearch.read(
        tmp_path / "ann.faiss", tmp_path / "vectors.npy", compressed.config
    )
    assert isinstance(back.rescore.vectors, np.memmap)
    s1, r1 = compressed.search(queries, 20)
    s2, r2 = back.search(queries, 20)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(s1, s2)


def test_compressed_read_rejects_mismatched_vectors(clustered, compressed, tmp_path):
    compressed.write(tmp_path / "ann.faiss", tmp_path / "vectors.npy")
    np.save(tmp_path / "vectors.npy", clustered[0][:100])
    with pytest.raises(ValueError, match="8000 references, expected 100 .the vectors in"):
        CompressedSearch.read(tmp_path / "ann.faiss", tmp_path / "vectors.npy")
    assert read_compressed(tmp_path / "ann.faiss", tmp_path / "vectors.npy", 8_000) is None
    assert read_compressed(tmp_path / "missing.faiss", tmp_path / "vectors.npy", 8_000) is None


def test_compressed_float16_vectors(clustered):
    gallery, queries = clustered[0][:2000], clustered[1]
    half = CompressedSearch.build(gallery.astype(np.float16), CompressedConfig(scan_bytes=16))
    _, ex_rows = ExactSearch(gallery).search(queries, 1)
    sims, rows = half.search(queries, 10)
    assert sims.dtype == np.float32
    assert (rows[:, 0] == ex_rows[:, 0]).mean() >= 0.98


def test_compressed_k_edge_cases(clustered, compressed):
    _, queries = clustered
    sims, rows = compressed.search(queries[:3], 0)
    assert sims.shape == rows.shape == (3, 0)
    sims, rows = compressed.search(queries[0], 5)  # one vector, not a matrix
    assert rows.shape == (1, 5)


def test_compressed_refuses_tiny_gallery():
    with pytest.raises(ValueError, match="at least 1000 references"):
        CompressedSearch.build(_unit(np.random.default_rng(5).normal(size=(50, 16))))


def test_compressed_config_sets_search_knobs(clustered, compressed, tmp_path):
    """The re-ranking count comes from the config given at search time, not the file."""
    import faiss

    compressed.write(tmp_path / "ann.faiss", tmp_path / "vectors.npy")
    cfg = CompressedConfig(scan_bytes=16, rerank=800, shortlist=100)
    back = CompressedSearch.read(tmp_path / "ann.faiss", tmp_path / "vectors.npy", cfg)
    assert isinstance(faiss.downcast_index(back.index), faiss.IndexPreTransform)
    assert back._split.rotated and back.config.rerank == 800
    gallery, queries = clustered
    _, ex_rows = ExactSearch(gallery).search(queries, 1)
    _, rows = back.search(queries, 10)
    assert (rows[:, 0] == ex_rows[:, 0]).mean() >= 0.95


def test_first_format_index_still_opens(clustered, tmp_path):
    """Indexes written before the refine stage hold RR,IVF,PQ-fast-scan codes: they open and
    search with the inverted lists' nprobe and the shortlist they were measured with."""
    import faiss
    from threadpoolctl import threadpool_limits

    from landmark_finder.core.search import LEGACY_SHORTLIST

    gallery, queries = clustered
    old = faiss.index_factory(64, "RR64,IVF15,PQ32x4fs", faiss.METRIC_INNER_PRODUCT)
    with threadpool_limits(1, user_api="openmp"):  # OpenMP spinning on a busy machine is slow
        old.train(gallery)
        old.add(gallery)
    faiss.write_index(old, str(tmp_path / "ann.faiss"))
    np.save(tmp_path / "vectors.npy", gallery.astype(np.float16))
    back = read_compressed(tmp_path / "ann.faiss", tmp_path / "vectors.npy", len(gallery))
    assert back is not None and faiss.extract_index_ivf(back.index).nprobe == 15
    assert back._min_wide == LEGACY_SHORTLIST
    _, ex_rows = ExactSearch(gallery).search(queries, 1)
    sims, rows = back.search(queries, 10)
    assert (rows[:, 0] == ex_rows[:, 0]).mean() >= 0.98
    want = np.einsum("qd,qd->q", queries, gallery[rows[:, 0]])
    np.testing.assert_allclose(sims[:, 0], want, atol=2e-3)


def test_float16_rescoring_equals_float32(clustered, compressed):
    """float16 rows are re-scored through faiss's fp16 decoder: the same inner products as
    converting them with numpy."""
    gallery, queries = clustered
    half = gallery.astype(np.float16)
    cs = CompressedSearch(compressed.index, half)
    rows = np.arange(0, 8000, 7)
    got = cs.rescore(queries[0], rows)
    want = half[rows].astype(np.float32) @ queries[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_compressed_pca_variant(clustered):
    """``dims`` below the vectors' dimension projects the codes on principal components; the
    shortlist is still re-scored exactly from the full vectors."""
    gallery, queries = clustered
    cfg = CompressedConfig(dims=48, scan_bytes=12, rerank=1600)
    assert cfg.factory(len(gallery), 64) == "PCA48,OPQ24,PQ24x4fs,Refine(SQ6)"
    assert CompressedConfig().factory(10**6, 1024) == "OPQ256,PQ256x4fs,Refine(SQ6)"
    assert CompressedConfig(rotate=False).factory(10**6, 1024) == "PQ256x4fs,Refine(SQ6)"
    cs = CompressedSearch.build(gallery, cfg)
    _, ex_rows = ExactSearch(gallery).search(queries, 1)
    sims, rows = cs.search(queries, 10)
    assert (rows[:, 0] == ex_rows[:, 0]).mean() >= 0.95
    np.testing.assert_allclose(sims, np.einsum("qd,qkd->qk", queries, gallery[rows]), atol=1e-5)


def test_projected_rescoring_equals_scoring_projected_vectors(clustered):
    """Re-scoring from unprojected rows through the whitening (one stored length per row)
    gives the inner products of the whitened unit vectors, from float32 or float16 rows."""
    from landmark_finder.core.search import ProjectedRows
    from landmark_finder.core.whitening import fit_whitening

    gallery, queries = clustered
    labels = np.random.default_rng(6).integers(0, 50, len(gallery))
    w = fit_whitening(gallery, labels, dim=40)
    unit, lengths = w.with_lengths(gallery)
    np.testing.assert_allclose(unit, w(gallery))
    q = w(queries[:5])
    rows = np.arange(0, 8000, 13)
    for raw in (gallery, gallery.astype(np.float16)):
        got = ProjectedRows(raw, w.mean, w.projection, lengths)(q[0], rows)
        want = w(np.asarray(raw[rows], np.float32)) @ q[0]
        np.testing.assert_allclose(got, want, atol=2e-3 if raw.dtype == np.float16 else 1e-5)
    cs = CompressedSearch.build(
        unit,
        CompressedConfig(scan_bytes=10),
        rescore=ProjectedRows(gallery, w.mean, w.projection, lengths),
    )
    sims, found = cs.search(q, 10)
    np.testing.assert_allclose(sims, np.einsum("qd,qkd->qk", q, unit[found]), atol=1e-5)
    _, ex_rows = ExactSearch(unit).search(q, 1)
    assert (found[:, 0] == ex_rows[:, 0]).all()


def test_split_search_finds_what_one_scan_finds(clustered, compressed, monkeypatch):
    """Cut into parts searched on several threads at once, the compressed search returns
    what one part returns (every one of the 8,000 references re-ranked here), the parts start
    on faiss's 32-row blocks, and the index joined from them for writing is the one split."""
    from concurrent.futures import ThreadPoolExecutor

    from landmark_finder.core import search
    from landmark_finder.core.search import _unwrap

    gallery, queries = clustered
    monkeypatch.setattr(search, "PART_MIN", 1000)
    whole = compressed.index_bytes()
    cfg = CompressedConfig(scan_bytes=16, rerank=8000)
    one = CompressedSearch(compressed.index, gallery, replace(cfg, threads=1))
    three = CompressedSearch(compressed.index, gallery, replace(cfg, threads=3))
    assert len(one._split.parts) == 1
    starts = [p.start for p in three._split.parts]
    assert len(starts) == 3 and starts[0] == 0 and all(s % 32 == 0 for s in starts)
    assert sum(p.scan.ntotal for p in three._split.parts) == len(gallery)
    # The fast-scan codes moved into the parts; joined again they write the same bytes.
    import faiss

    assert faiss.downcast_index(_unwrap(three._index)[0].base_index).ntotal == 0
    assert three.index_bytes() == whole == one.index_bytes()
    s1, r1 = one.search(queries, 50)
    s3, r3 = three.search(queries, 50)
    np.testing.assert_array_equal(r1, r3)
    np.testing.assert_array_equal(s1, s3)
    # Queries are scanned a batch at a time: batches that do not divide the queries evenly.
    monkeypatch.setattr(search, "SCAN_BATCH", 7)
    s7, r7 = three.search(queries, 50)
    np.testing.assert_array_equal(r7, r1)
    np.testing.assert_array_equal(s7, s1)
    # Many callers at once (a web server's threads): each gets its own query's answer.
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda q: three.search(q, 50)[1][0], queries))
    np.testing.assert_array_equal(np.stack(got), r1)


def test_split_search_shares_the_reranked_count(clustered, compressed, monkeypatch):
    """With fewer re-ranked candidates than references each part re-ranks its share."""
    from landmark_finder.core import search

    gallery, queries = clustered
    monkeypatch.setattr(search, "PART_MIN", 1000)
    cfg = CompressedConfig(scan_bytes=16, rerank=1200, shortlist=100, threads=2)
    cs = CompressedSearch(compressed.index, gallery, cfg)
    assert len(cs._split.parts) == 2
    _, ex_rows = ExactSearch(gallery).search(queries, 1)
    sims, rows = cs.search(queries, 10)
    assert (rows[:, 0] == ex_rows[:, 0]).mean() >= 0.95
    np.testing.assert_allclose(sims, np.einsum("qd,qkd->qk", queries, gallery[rows]), atol=1e-5)


def test_with_rerank_is_the_search_built_with_that_count(clustered, compressed, monkeypatch):
    """A search re-ranking fewer candidates (for queries that only propose) shares the codes
    and parts, and answers as a search configured with that count does."""
    from landmark_finder.core import search

    gallery, queries = clustered
    monkeypatch.setattr(search, "PART_MIN", 1000)
    cs = CompressedSearch(compressed.index, gallery, CompressedConfig(scan_bytes=16, threads=2))
    few = cs.with_rerank(1200)
    built = CompressedSearch(
        compressed.index, gallery, CompressedConfig(scan_bytes=16, threads=2, rerank=1200)
    )
    assert few._split is cs._split and cs.config.rerank == CompressedConfig().rerank
    s_few, r_few = few.search(queries, 10)
    s_built, r_built = built.search(queries, 10)
    np.testing.assert_array_equal(r_few, r_built)
    np.testing.assert_array_equal(s_few, s_built)
    # fewer candidates re-ranked: the exact top photo still found for most queries
    _, ex_rows = ExactSearch(gallery).search(queries, 1)
    assert (r_few[:, 0] == ex_rows[:, 0]).mean() >= 0.9


def test_joined_index_outlives_its_search(clustered):
    """The index a split search joins for writing stays valid once the search is gone (its
    re-ranking codes are shared, not copied)."""
    import gc

    gallery, queries = clustered
    cs = CompressedSearch.build(gallery[:2000], CompressedConfig(scan_bytes=16))
    want = cs.search(queries[:20], 10)[1]
    joined = cs.index
    del cs
    gc.collect()
    again = CompressedSearch(joined, gallery[:2000], CompressedConfig(scan_bytes=16))
    np.testing.assert_array_equal(again.search(queries[:20], 10)[1], want)


def test_rebuild_reuses_the_training_that_fits(clustered, tmp_path):
    """After rows change, the codes are made again with the saved index's rotation and
    codebooks (no training); a saved index of another structure is not reused."""
    from landmark_finder.core.search import trained_codes

    gallery, queries = clustered
    cfg = CompressedConfig(scan_bytes=16)
    first = CompressedSearch.build(gallery[:3000], cfg, seed=1)
    path = tmp_path / "ann.faiss"
    path.write_bytes(first.index_bytes())
    trained = trained_codes(path)
    assert trained is not None and trained.ntotal == 0
    again = CompressedSearch.build(gallery, cfg, trained=trained)
    assert again.ntotal == len(gallery)
    for a, b in zip(learned_codes(again.index), learned_codes(first.index), strict=True):
        np.testing.assert_array_equal(a, b)
    _, ex_rows = ExactSearch(gallery).search(queries, 1)
    _, rows = again.search(queries, 10)
    assert (rows[:, 0] == ex_rows[:, 0]).mean() >= 0.95

    other = CompressedSearch.build(
        gallery, CompressedConfig(scan_bytes=16, rotate=False), trained=trained_codes(path)
    )
    assert not other._split.rotated  # trained anew, as the config asks
    assert trained_codes(tmp_path / "missing.faiss") is None


def test_index_written_before_the_rotation_still_opens(clustered, tmp_path):
    """Indexes written before the OPQ rotation open as they are and re-rank as many
    candidates as they were measured with."""
    from landmark_finder.core.search import UNROTATED_RERANK

    gallery, queries = clustered
    old = CompressedSearch.build(gallery, CompressedConfig(scan_bytes=16, rotate=False))
    old.write(tmp_path / "ann.faiss", tmp_path / "vectors.npy")
    back = read_compressed(tmp_path / "ann.faiss", tmp_path / "vectors.npy", len(gallery))
    assert back is not None and not back._split.rotated
    assert back.config.rerank == UNROTATED_RERANK
    _, ex_rows = ExactSearch(gallery).search(queries, 1)
    sims, rows = back.search(queries, 10)
    assert (rows[:, 0] == ex_rows[:, 0]).mean() >= 0.98
    np.testing.assert_allclose(sims, np.einsum("qd,qkd->qk", queries, gallery[rows]), atol=1e-5)

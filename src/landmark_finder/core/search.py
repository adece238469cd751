"""Nearest-neighbour search over gallery descriptors (inner product = cosine on unit vectors).

Exact search is a matrix product: for galleries up to a few hundred thousand photos it is both
exact and fast enough. Beyond that, ``ApproximateSearch`` uses a faiss HNSW graph.
:data:`SEARCHES` names them (``exact``, ``approximate``) for the index that chooses one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from landmark_finder.registry import Registry


class Searcher(Protocol):
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``queries`` (Q, d) → similarities (Q, k) descending and gallery rows (Q, k)."""
        ...


class ExactSearch:
    def __init__(self, vectors: np.ndarray):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = np.atleast_2d(np.asarray(queries, np.float32)) @ self.vectors.T
        k = min(k, sims.shape[1])
        if k == 0:
            return np.zeros((len(sims), 0), np.float32), np.zeros((len(sims), 0), np.int64)
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(sims, part, 1)
        order = np.argsort(-top, axis=1, kind="stable")
        return np.take_along_axis(top, order, 1), np.take_along_axis(part, order, 1)


class ApproximateSearch:
    """faiss HNSW over inner product; ``efSearch`` trades recall for speed."""

    def __init__(self, index):
        self.index = index

    @classmethod
    def build(cls, vectors: np.ndarray, m: int = 32, ef_search: int = 128) -> ApproximateSearch:
        import faiss

        index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = ef_search
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index)

    @classmethod
    def read(cls, path: Path, ef_search: int = 128) -> ApproximateSearch:
        import faiss

        index = faiss.read_index(str(path))
        faiss.downcast_index(index).hnsw.efSearch = ef_search
        return cls(index)

    def write(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.index.ntotal)
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if k == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        sims, rows = self.index.search(q, k)
        keep = rows >= 0  # HNSW may return fewer than k
        if not keep.all():
            n = int(keep.sum(1).min())
            sims, rows = sims[:, :n], rows[:, :n]
        return sims, rows.astype(np.int64)


#: Search name -> ``factory(vectors, saved)``: a searcher over the (projected) gallery
#: ``vectors``; ``saved`` is where a prebuilt structure may be stored (``None``: nowhere).
SEARCHES: Registry[Callable[[np.ndarray, Path | None], Searcher]] = Registry("search")


@SEARCHES.register("exact")
def _exact(vectors: np.ndarray, saved: Path | None) -> Searcher:
    return ExactSearch(vectors)


@SEARCHES.register("approximate")
def _approximate(vectors: np.ndarray, saved: Path | None) -> Searcher:
    """The saved HNSW graph when there is one (building it is the slow part), else a new one."""
    if saved is not None and saved.exists():
        return ApproximateSearch.read(saved)
    return ApproximateSearch.build(vectors)

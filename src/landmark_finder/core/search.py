"""Nearest-neighbour search over gallery descriptors (inner product = cosine on unit vectors).

Exact search is a matrix product: for galleries up to hundreds of thousands of photos it is both
exact and fast enough. Past ``COMPRESSED_MIN`` references, ``CompressedSearch`` keeps only
compressed codes in memory (after a learned OPQ rotation, a 4-bit fast-scan PQ code scanned in
full, then a 6-bit-per-dimension scalar-quantised code to re-rank: under 1 KB per reference
instead of 4 KB) to pick a shortlist,
the references cut into parts searched on every core at once (:class:`SplitIndex`), and
re-scores that shortlist exactly (a :class:`Rescorer`): from the descriptors the index
already stores, projected through the whitening on the fly (:class:`ProjectedRows`, no copy of
the gallery on disk), or from stored full vectors (:class:`StoredRows`, memory-mapped). The
similarities callers see are true inner products; only the recall of the shortlist is
approximate. ``ApproximateSearch`` (HNSW over full vectors) remains for indexes built with it.
:data:`SEARCHES` names them (``exact``, ``approximate``, ``compressed``) for the index that
chooses one.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from landmark_finder.core.cores import usable_cores
from landmark_finder.core.memory import advise_huge_pages
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


#: Galleries with at least this many references get ``CompressedSearch``. Measured with
#: bench/scale.py (single query, machine shared): at 100k references exact search took 28 ms
#: per query and 4 KB of RAM per reference, compressed search 21 ms and 0.95 KB with the same
#: top landmark for every query; at 250k exact search took 72 ms. Not lower: the compressed
#: index is a model file, rewritten whole when photos are added (~0.9 KB per photo: 90 MB for
#: an `index add` of 10 photos at 100k, against ~0.3 MB with exact search); its codes cannot be
#: kept per segment, as faiss's fast-scan index does not take stored codes back.
COMPRESSED_MIN = 250_000
TRAIN_MIN = 1_000  # fewer references cannot train the 16-centroid sub-quantisers; search exactly
#: How indexes written before ``ProjectedRows`` stored the vectors their shortlist is re-scored
#: from (an index read from such a version keeps them when it is written again).
COMPRESSED_VECTOR_DTYPE = np.float16
#: The shortlist indexes of the first format (inverted lists + 4-bit PQ) were measured with.
LEGACY_SHORTLIST = 1000
#: Candidates re-ranked for indexes written before the OPQ rotation (2026-12-03): unrotated
#: 4-bit codes rank the true neighbours lower (99.4 % agreement at 1M with 24,000).
UNROTATED_RERANK = 24_000


_controller = None


def _single_thread():
    """faiss's OpenMP limited to one thread for the duration of a call. A single query is far
    too small to share; and on a busy machine OpenMP's spinning barriers are ruinous: building
    a 2,000-vector index took 154 s with two threads against 5.5 s with one while other
    processes loaded both cores (and the same holds for searching)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="openmp")


@dataclass(frozen=True)
class CompressedConfig:
    """How the compressed index is built and searched (defaults measured in bench/scale.py).

    Three stages per query: every reference's 4-bit fast-scan PQ code (``scan_bytes`` bytes)
    is scanned and the best ``rerank`` kept (at least twice the shortlist); those are re-ranked
    with a finer code kept in memory (``refine``, a faiss scalar quantiser, 6 bits per
    dimension); the best shortlist (``shortlist``, at least ``expand`` × k) are re-scored
    exactly from the full vectors. ``rerank`` is a count, not a multiple of k: a search for
    the hits of many views (k = 200 × views) costs about what one for 200 photos does. What
    it buys at 1M references with the rotation (2026-12-03, the queries of bench/scale.py):
    the top landmark equal to exact search's for 99.5 % of queries with 6,000, 99.6 % with
    8,000; without it 98.8 % with 19,200 and 99.4 % with 24,000 (the losses are candidates
    the scan ranks too low: a longer shortlist changed nothing).
    ``rotate``: an OPQ rotation (``opq_iter`` iterations) learned before both codes, which
    balances the variance among the 4-dimension sub-quantisers, so that the scan ranks the
    true neighbours higher and a quarter of the candidates are kept and re-ranked.
    ``dims`` < the vectors' dimension projects both codes on that many principal components
    first (smaller codes, measured less accurate: see README, "Search at scale").
    ``nprobe`` only applies to indexes of the first format (inverted lists). ``threads``: the
    references are cut into that many parts (:class:`SplitIndex`), each scanned and re-ranked
    on its own core for ``rerank / threads`` candidates.
    """

    scan_bytes: int = 128
    refine: str = "SQ6"
    rerank: int = 6_000
    shortlist: int = 300
    expand: float = 1.5
    dims: int | None = None
    rotate: bool = True
    opq_iter: int = 20
    nprobe: int = 32
    train_max: int = 65_536  # references sampled to train the projection and the codes
    threads: int | None = None  # parts searched at once (None: every usable core)

    def factory(self, n: int, d: int) -> str:
        """The structure, spelled like a faiss factory string (for reports)."""
        dims, m = self._shape(d)
        pca = f"PCA{dims}," if dims < d else ""
        opq = f"OPQ{m}," if self.rotate else ""
        return f"{pca}{opq}PQ{m}x4fs,Refine({self.refine})"

    def _shape(self, d: int) -> tuple[int, int]:
        dims = min(self.dims or d, d)
        m = min(2 * self.scan_bytes, dims)
        while dims % m:  # sub-quantisers must split the dimensions evenly
            m -= 1
        return dims, m

    def fits(self, index, d: int) -> bool:
        """Whether ``index`` (a faiss index) is the structure :meth:`make_index` makes for
        ``d``-dimensional vectors, so that its training can be reused."""
        import faiss

        if not SplitIndex.splittable(index) or index.d != d:
            return False
        inner, transforms = _unwrap(index)
        dims, m = self._shape(d)
        kinds = ["rotation" if _is_rotation(t) else type(t) for t in transforms]
        want = [faiss.PCAMatrix] * (dims < d) + ["rotation"] * self.rotate
        base = faiss.downcast_index(inner.base_index)
        fine = faiss.downcast_index(inner.refine_index)
        qtype = faiss.downcast_index(faiss.index_factory(dims, self.refine)).sq.qtype
        return kinds == want and base.d == dims and base.M == m and fine.sq.qtype == qtype

    def make_index(self, d: int):
        """An untrained faiss index: [PCA →] [OPQ →] refine(fast-scan PQ, scalar quantiser)."""
        import faiss

        dims, m = self._shape(d)
        ip = faiss.METRIC_INNER_PRODUCT
        scan = faiss.index_factory(dims, f"PQ{m}x4fs", ip)
        fine = faiss.index_factory(dims, self.refine, ip)
        index = faiss.IndexRefine(scan, fine)
        transforms = [faiss.PCAMatrix(d, dims)] if dims < d else []
        if self.rotate:
            opq = faiss.OPQMatrix(dims, m)
            opq.niter = self.opq_iter
            # learned for the 4-bit codes it serves (its default, 8-bit codes, would take 16
            # times the clustering and fit another quantiser)
            opq.pq = faiss.ProductQuantizer(dims, m, 4)
            opq.referenced_objects = [opq.pq]
            transforms.append(opq)
        return _wrap(index, transforms)


#: Fewer references per part than this are not worth a thread hand-off: not split.
PART_MIN = 32_768
#: Queries one fast scan reads the codes for (bounds its result arrays: 64 x 12,000 hits).
SCAN_BATCH = 64

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _one_openmp_thread() -> None:
    import faiss

    faiss.omp_set_num_threads(1)  # per thread: each part is one core's work


def _parts_pool() -> ThreadPoolExecutor:
    """The threads every split search shares, one per usable core (faiss releases the GIL)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                usable_cores(), thread_name_prefix="search", initializer=_one_openmp_thread
            )
        return _pool


def _forget_pool() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()  # a forked child has none of the threads


os.register_at_fork(after_in_child=_forget_pool)


def _fast_scan(like, n: int, packed: np.ndarray):
    """A trained ``IndexPQFastScan`` with ``like``'s quantiser holding the ``n`` rows whose
    packed codes (whole 32-row blocks) are ``packed``, on 2 MB pages (a scan reads them in
    order: 0.5 ms less per 64 MB, measured)."""
    import faiss

    scan = faiss.IndexPQFastScan(like.d, like.M, like.nbits, like.metric_type, like.bbs)
    scan.pq = like.pq
    scan.is_trained = True
    scan.ntotal, scan.ntotal2 = n, math.ceil(n / like.bbs) * like.bbs
    scan.codes.resize(packed.nbytes)
    table = faiss.rev_swig_ptr(scan.codes.get(), packed.nbytes)
    advise_huge_pages(table)  # before the copy touches the pages
    table[:] = packed
    return scan


def _unwrap(index) -> tuple[Any, list]:
    """The index behind a faiss ``IndexPreTransform`` and its transforms, in the order
    applied (none when ``index`` is not one)."""
    import faiss

    index = faiss.downcast_index(index)
    if not isinstance(index, faiss.IndexPreTransform):
        return index, []
    chain = [faiss.downcast_VectorTransform(index.chain.at(i)) for i in range(index.chain.size())]
    return faiss.downcast_index(index.index), chain


def _wrap(index, transforms: list):
    """``index`` behind ``transforms`` (applied in order), or itself without any."""
    import faiss

    if not transforms:
        return index
    out = faiss.IndexPreTransform(transforms[-1], index)
    for t in reversed(transforms[:-1]):
        out.prepend_transform(t)
    out.referenced_objects = [index, *transforms]
    return out


def _is_rotation(t) -> bool:
    """An OPQ rotation (faiss saves it as a plain square linear transform)."""
    import faiss

    return (
        isinstance(t, faiss.LinearTransform)
        and not isinstance(t, faiss.PCAMatrix)
        and t.d_in == t.d_out
    )


@dataclass
class _Part:
    start: int  # first gallery row
    scan: Any  # faiss.IndexPQFastScan over rows start .. start + scan.ntotal


class SplitIndex:
    """``IndexRefine(fast-scan PQ, scalar quantiser)`` cut into row ranges searched at once.

    One query scans all of its fast-scan codes (128 MB at 1M references): 15 ms on one core,
    measured, and re-ranking 19,200 candidates with the 6-bit codes took another 14 ms (faiss
    reads them in score order, one cache miss after another). Cut into one part per core,
    each part scans its share of the codes and re-ranks its share of the candidates; the
    re-ranking gathers the candidates' codes in row order into a scratch index and scans that
    (7 ms for 19,200 on one core instead of 14). 1M references, 19,200 re-ranked, 2 cores:
    29 ms → 10.5 ms per query, the same answers (README, "Search at scale").

    The fast-scan codes are moved into the parts (faiss packs them in blocks of 32 rows, so
    parts start at multiples of 32); the scalar-quantised codes stay in the refine index and
    are read in place. :meth:`joined` puts the faiss index back together for writing.
    """

    def __init__(self, index, parts: int):
        import faiss

        self._owner = index  # faiss frees the sub-indexes with it: keep it alive
        refine, self.transforms = _unwrap(index)
        self.rotated = any(_is_rotation(t) for t in self.transforms)
        base = faiss.downcast_index(refine.base_index)
        self.fine = faiss.downcast_index(refine.refine_index)
        self.ntotal = n = int(refine.ntotal)
        size = int(self.fine.code_size)
        self.codes = faiss.rev_swig_ptr(self.fine.codes.data(), n * size).reshape(n, size)
        bbs = int(base.bbs)
        block = bbs * int(base.M2) // 2
        packed = faiss.AlignedTable_to_array(base.codes)
        blocks = math.ceil(n / bbs)
        bounds = [min(n, round(i * blocks / parts) * bbs) for i in range(parts + 1)]
        self.parts = [
            _Part(a, _fast_scan(base, b - a, packed[a // bbs * block : math.ceil(b / bbs) * block]))
            for a, b in zip(bounds, bounds[1:], strict=False)
        ]
        del packed
        base.codes.resize(0)  # the parts hold them now (the index is not searched any more)
        base.ntotal = base.ntotal2 = 0
        self._local = threading.local()

    @staticmethod
    def splittable(index) -> bool:
        import faiss

        inner, _ = _unwrap(index)
        return (
            isinstance(inner, faiss.IndexRefine)
            and isinstance(faiss.downcast_index(inner.base_index), faiss.IndexPQFastScan)
            and isinstance(faiss.downcast_index(inner.refine_index), faiss.IndexScalarQuantizer)
        )

    def joined(self):
        """The faiss index of all the rows again (a copy of the fast-scan codes), behind the
        same transforms."""
        import faiss

        packed = np.concatenate([faiss.AlignedTable_to_array(p.scan.codes) for p in self.parts])
        base = _fast_scan(self.parts[0].scan, self.ntotal, packed)
        joined = faiss.IndexRefine(base, self.fine)
        joined.referenced_objects.append(self._owner)  # owns the refine codes, the transforms
        return _wrap(joined, self.transforms)

    def transform(self, q: np.ndarray) -> np.ndarray:
        """Queries as the codes see them (PCA, rotation: inner products kept up to the PCA)."""
        if not self.transforms:
            return q
        with _single_thread():  # faiss's BLAS would start OpenMP threads that keep spinning
            for t in self.transforms:
                q = t.apply(q)
        return np.ascontiguousarray(q, dtype=np.float32)

    def _scratch(self):
        """This thread's index to re-rank gathered codes in (its buffer is reused)."""
        scratch = getattr(self._local, "index", None)
        if scratch is None:
            import faiss

            scratch = faiss.IndexScalarQuantizer(
                self.fine.d, self.fine.sq.qtype, self.fine.metric_type
            )
            scratch.sq = self.fine.sq
            scratch.is_trained = True
            self._local.index = scratch
        return scratch

    def _search_part(
        self, part: _Part, q: np.ndarray, take: int, wide: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Scan one part for every query of ``q`` (n, d) in one call, then re-rank each
        query's best ``take`` with the fine codes: per query, its best ``wide`` (similarities,
        gallery rows)."""
        import faiss

        _, found = part.scan.search(q, min(take, part.scan.ntotal))
        scratch = self._scratch()
        size = self.codes.shape[1]
        out = []
        for qi, hits in zip(q, found, strict=True):
            rows = np.sort(hits[hits >= 0]) + part.start
            if len(rows) == 0:
                out.append((np.zeros(0, np.float32), rows))
                continue
            n = len(rows)
            scratch.codes.resize(n * size)
            scratch.ntotal = n
            view = faiss.rev_swig_ptr(scratch.codes.data(), n * size).reshape(n, size)
            np.take(self.codes, rows, axis=0, out=view, mode="clip")  # rows are in range
            sims, pos = scratch.search(qi[None], min(wide, n))
            out.append((sims[0], rows[pos[0]]))
        return out

    def search(self, q: np.ndarray, rerank: int, wide: int) -> list[np.ndarray]:
        """Per query of ``q`` (n, d): gallery rows of the best ``wide`` by the fine codes
        among the best ``rerank`` by the scan codes (``rerank`` shared among the parts).

        Queries are scanned :data:`SCAN_BATCH` at a time: faiss's fast scan reads each block
        of codes once for all of them (at 1M references, 7.2 ms per query alone, 2.0 ms per
        query in a batch of 64: the regions of a crowded photo, a photo's views)."""
        take = math.ceil(rerank / len(self.parts))
        q = self.transform(q)
        out = []
        for a in range(0, len(q), SCAN_BATCH):
            block = q[a : a + SCAN_BATCH]
            if len(self.parts) == 1:
                with _single_thread():
                    found = [self._search_part(self.parts[0], block, take, wide)]
            else:
                found = list(
                    _parts_pool().map(
                        lambda p, b=block: self._search_part(p, b, take, wide), self.parts
                    )
                )
            for i in range(len(block)):
                sims = np.concatenate([f[i][0] for f in found])
                rows = np.concatenate([f[i][1] for f in found])
                out.append(rows[np.argsort(-sims, kind="stable")[:wide]])
        return out


class Rows(Protocol):
    """Gallery rows by number: ``rows[idx]`` → (len(idx), D) (an array, memory-mapped or not)."""

    def __getitem__(self, idx: np.ndarray) -> np.ndarray: ...


class Rescorer(Protocol):
    def __call__(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact similarities (len(rows),) of the searched query ``q`` with gallery ``rows``."""
        ...


def dots(block: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``block @ q`` in float32. float16 rows are converted by faiss's vectorised fp16 scalar
    quantiser (numpy's conversion is scalar code, ~3× slower, and was most of a search's
    time)."""
    block = np.asarray(block)
    if block.dtype != np.float16 or len(block) == 0:
        return np.asarray(block, np.float32) @ q
    import faiss

    flat = faiss.IndexScalarQuantizer(
        block.shape[1], faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    flat.add_sa_codes(np.ascontiguousarray(block).view(np.uint8))
    sims, pos = flat.search(np.ascontiguousarray(q, np.float32)[None], len(block))
    out = np.empty(len(block), np.float32)
    out[pos[0]] = sims[0]
    return out


@dataclass
class StoredRows:
    """Re-scoring from the searched vectors themselves (float32 or float16, may be mapped)."""

    vectors: Rows

    def __call__(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return dots(self.vectors[rows], q)


@dataclass
class ProjectedRows:
    """Re-scoring from unprojected descriptors ``raw`` through a linear projection.

    The searched vectors are ``(x - mean) @ projection / length`` (whitening, then unit
    length), so their inner product with a searched query ``q`` is
    ``((x - mean) @ (projection @ q)) / length``: exact, from the descriptors the index keeps
    anyway plus one stored length per row, instead of a second copy of every vector (2 KB per
    reference in float16 at 1024 dimensions).
    """

    raw: Rows
    mean: np.ndarray  # (D,)
    projection: np.ndarray  # (D, d)
    lengths: np.ndarray  # (N,) length of each projected row before normalising; (N, parts)
    blocks: tuple[int, ...] = ()  # a fused descriptor's parts (``Whitening.blocks``)

    def __call__(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        q = np.asarray(q, np.float32)
        raw, lengths = self.raw[rows], np.asarray(self.lengths[rows], np.float32)
        if not self.blocks:
            pq = self.projection @ q
            return (dots(raw, pq) - np.float32(self.mean @ pq)) / np.maximum(lengths, 1e-12)
        out = np.zeros(len(rows), np.float32)
        for b, (a, z) in enumerate(itertools.pairwise(np.cumsum((0, *self.blocks)))):
            pq = self.projection[:, a:z] @ q[a:z]  # rows of the other parts are zero
            out += (dots(raw, pq) - np.float32(self.mean @ pq)) / np.maximum(lengths[:, b], 1e-12)
        return out / np.float32(np.sqrt(len(self.blocks)))


class CompressedSearch:
    """Compressed codes in memory pick a shortlist re-scored exactly from full vectors.

    RAM per reference is the scan code and the refine code (896 bytes with the defaults: 128
    + 768) and a fixed cost for the codebooks; the shortlist is re-scored by ``rescore`` (an
    array of the full vectors, float32 or float16, may be memory-mapped: only the shortlisted
    rows are paged in; or any :class:`Rescorer`). Indexes of the first format (random
    rotation, inverted lists, 4-bit PQ) still open and search as they were built.
    """

    def __init__(
        self, index, rescore: Rescorer | np.ndarray, config: CompressedConfig | None = None
    ):
        self.rescore: Rescorer = StoredRows(rescore) if isinstance(rescore, np.ndarray) else rescore
        self.config = config or CompressedConfig()
        self.ntotal = int(index.ntotal)
        self._index = index
        self._split: SplitIndex | None = None
        self._min_wide = 0
        if SplitIndex.splittable(index):
            parts = self.config.threads or usable_cores()
            self._split = SplitIndex(index, max(1, min(parts, self.ntotal // PART_MIN)))
            if config is None and not self._split.rotated:  # written before the rotation
                self.config = replace(self.config, rerank=UNROTATED_RERANK)
        else:
            self._apply_config()

    def with_rerank(self, rerank: int) -> CompressedSearch:
        """The same search re-ranking ``rerank`` scan candidates per query (still at least
        twice the shortlist): the codes, parts and threads are shared, nothing is copied. For
        queries that only propose, e.g. the regions of a crowded photo."""
        other = copy.copy(self)
        other.config = replace(self.config, rerank=rerank)
        return other

    @property
    def index(self):
        """The faiss index (a split one joined again: a copy, for writing or inspection)."""
        return self._index if self._split is None else self._split.joined()

    def _apply_config(self) -> None:
        import faiss

        self._refine = None
        inner = faiss.downcast_index(self._index)
        if isinstance(inner, faiss.IndexPreTransform):
            inner = faiss.downcast_index(inner.index)
        if isinstance(inner, faiss.IndexRefine):
            self._refine = faiss.IndexRefineSearchParameters  # k_factor set per search
            return
        try:  # first format: inverted lists + PQ, searched with the shortlist it was built for
            ivf = faiss.extract_index_ivf(self._index)
        except RuntimeError:
            return
        ivf.nprobe = min(self.config.nprobe, ivf.nlist)
        self._min_wide = LEGACY_SHORTLIST

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        config: CompressedConfig | None = None,
        seed: int = 0,
        rescore: Rescorer | None = None,
        trained=None,
    ) -> CompressedSearch:
        """Codes trained on and made from ``vectors``; the shortlist is re-scored by
        ``rescore`` (default: from ``vectors``, which are then kept).

        ``trained``: an empty faiss index whose training is reused when it has the structure
        ``config`` asks for (:func:`trained_codes`): after photos are added to or removed
        from a large index, its rows are encoded again without learning the rotation and the
        codebooks again (at 1M references 3 s to read them and 44 s to encode instead of a
        268 s build, measured)."""
        config = config or CompressedConfig()
        n, d = vectors.shape
        if n < TRAIN_MIN:
            raise ValueError(f"compressed search needs at least {TRAIN_MIN} references, got {n}")
        reuse = trained is not None and trained.ntotal == 0 and config.fits(trained, d)
        index = trained if reuse else config.make_index(d)
        with _single_thread():
            if not reuse:
                rng = np.random.default_rng(seed)
                sample = np.sort(rng.choice(n, min(n, config.train_max), replace=False))
                index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
            for start in range(0, n, 65536):  # chunks: float16 or memory-mapped input stays small
                index.add(np.ascontiguousarray(vectors[start : start + 65536], dtype=np.float32))
        return cls(index, vectors if rescore is None else rescore, config)

    def index_bytes(self) -> bytes:
        """The faiss index in faiss's own serialisation (no pickle)."""
        import faiss

        return faiss.serialize_index(self.index).tobytes()

    def write(self, index_path: Path, vectors_path: Path) -> None:
        """The faiss index and the full vectors it re-scores from (``.npy``, memory-mapped
        when read back)."""
        if not isinstance(self.rescore, StoredRows):
            raise TypeError("only a search that re-scores from stored vectors writes them")
        Path(index_path).write_bytes(self.index_bytes())
        np.save(vectors_path, np.asarray(self.rescore.vectors))

    @classmethod
    def open(
        cls, index_path: Path, rescore: Rescorer, n: int, config: CompressedConfig | None = None
    ) -> CompressedSearch:
        """The faiss index saved at ``index_path``, which must hold ``n`` references."""
        import faiss

        index = faiss.read_index(str(index_path))
        if index.ntotal != n:
            raise ValueError(f"{index_path}: {index.ntotal} references, expected {n}")
        return cls(index, rescore, config)

    @classmethod
    def read(
        cls, index_path: Path, vectors_path: Path, config: CompressedConfig | None = None
    ) -> CompressedSearch:
        """The faiss index and the stored vectors ``write`` saved (memory-mapped)."""
        vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
        try:
            return cls.open(index_path, StoredRows(vectors), len(vectors), config)
        except ValueError as e:
            raise ValueError(f"{e} (the vectors in {vectors_path})") from None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        n = self.ntotal
        k = min(k, n)
        if k == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        wide = max(self.config.shortlist, int(np.ceil(self.config.expand * k)), self._min_wide)
        wide = min(n, wide)
        rerank = max(self.config.rerank, 2 * wide)
        if self._split is not None:
            cand = self._split.search(q, rerank, wide)
        else:
            params = None
            if self._refine is not None:  # per call, not on the shared index: thread-safe
                params = self._refine(k_factor=rerank / wide)
            with _single_thread():
                cand = list(self._index.search(q, wide, params=params)[1])
        out_s, out_r = [], []
        with _single_thread():
            for qi, rows in zip(q, cand, strict=True):
                rows = np.sort(rows[rows >= 0])  # sorted: sequential-ish reads of the mapped file
                sims = self.rescore(qi, rows)
                top = np.argsort(-sims, kind="stable")[:k]
                out_s.append(sims[top])
                out_r.append(rows[top])
        m = min(len(r) for r in out_r)  # the scanned lists may hold fewer than k references
        return (
            np.stack([s[:m] for s in out_s]).astype(np.float32),
            np.stack([r[:m] for r in out_r]).astype(np.int64),
        )


def trained_codes(index_path: Path):
    """The faiss index saved at ``index_path`` emptied of its rows, keeping what it learned
    (rotation, codebooks), for :meth:`CompressedSearch.build`; None when unreadable."""
    import faiss

    try:
        index = faiss.read_index(str(index_path))
    except RuntimeError:
        return None
    index.reset()
    return index


def read_compressed(index_path: Path, rescore: Path | Rescorer, n: int) -> CompressedSearch | None:
    """The persisted compressed search if it covers exactly ``n`` references, re-scoring with
    ``rescore`` or from the stored vectors at that path (None when absent, stale or
    unreadable: the caller rebuilds it)."""
    try:
        if isinstance(rescore, Path):
            found = CompressedSearch.read(index_path, rescore)
        else:
            found = CompressedSearch.open(index_path, rescore, n)
    except (RuntimeError, ValueError, OSError):
        return None
    return found if found.ntotal == n else None


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


@SEARCHES.register("compressed")
def _compressed(vectors: np.ndarray, saved: Path | None) -> Searcher:
    """Built from the vectors; the index reads its persisted one itself (two files)."""
    return CompressedSearch.build(vectors)

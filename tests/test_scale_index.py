"""An index past the compressed-search threshold: written with its compressed search (codes and,
when whitened, each row's projected length as model files; no second copy of the vectors),
reopened without re-training, and the shortlist the recognizer gets re-scored exactly from the
descriptors the index holds. The threshold is lowered so the test is small."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import learned_codes
from landmark_finder.core import search as search_mod
from landmark_finder.core.catalog import Catalog
from landmark_finder.core.descriptors import Preprocessing
from landmark_finder.core.search import CompressedSearch, ExactSearch, ProjectedRows, StoredRows
from landmark_finder.core.whitening import fit_whitening
from landmark_finder.recognition import index as index_mod
from landmark_finder.recognition.index import Index, PhotoRecord

ROOT = Path(__file__).resolve().parents[1]

N, D = 3000, 64


@pytest.fixture(params=[False, True], ids=["raw", "whitened"])
def big_index(tmp_path, monkeypatch, request):
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
    idx = Index("test", "0" * 16, Preprocessing(), desc, records, cat, whiten=request.param)
    if request.param:
        idx.whitening = fit_whitening(desc, idx.row_labels(), dim=48)
    idx.save(tmp_path / "index")
    return tmp_path / "index", desc


def test_index_past_threshold_persists_and_reopens_compressed_search(big_index):
    root, desc = big_index
    names = [p.name for p in (root / "model").iterdir()]
    assert any(n.startswith("ann-") and n.endswith(".faiss") for n in names)
    assert not any(n.startswith("ann-vectors-") for n in names)
    lengths = [n for n in names if n.startswith("ann-lengths-")]

    idx = Index.open(root)
    assert idx.search_kind.startswith("compressed")
    s = idx.searcher
    assert isinstance(s, CompressedSearch)
    if idx.whitening is not None:
        assert len(lengths) == 1 and (root / "model" / lengths[0]).stat().st_size < 4 * N + 200
        assert isinstance(s.rescore, ProjectedRows) and isinstance(s.rescore.lengths, np.memmap)
    else:
        assert not lengths and isinstance(s.rescore, StoredRows)

    q = desc[:100] + 0.05 * np.random.default_rng(8).normal(size=(100, D)).astype(np.float32)
    q = idx.project(q / np.linalg.norm(q, axis=1, keepdims=True))
    sims, rows = s.search(q, 50)
    ex_sims, ex_rows = ExactSearch(idx.project(idx.descriptors)).search(q, 50)
    assert (rows[:, 0] == ex_rows[:, 0]).mean() >= 0.99
    # re-scored exactly: the similarities exact search gives the same rows
    want = np.einsum("qd,qkd->qk", q, idx.project(idx.descriptors)[rows])
    np.testing.assert_allclose(sims, want, atol=1e-4)


def test_changed_rows_rebuild_the_compressed_search(big_index):
    root, desc = big_index
    idx = Index.open(root)
    before = idx.searcher
    idx.keep_rows(list(range(2500)))
    after = idx.searcher
    assert after is not before and isinstance(after, CompressedSearch)
    assert after.index.ntotal == 2500
    # the rows changed, the whitening did not: the saved rotation and codebooks are reused
    for a, b in zip(learned_codes(after.index), learned_codes(before.index), strict=True):
        np.testing.assert_array_equal(a, b)


def test_version_with_stored_vectors_still_opens(big_index):
    """A version written before the lengths were stored names a float16 copy of the searched
    vectors instead: it opens, re-scores from them, and keeps them when written again."""
    import json

    from landmark_finder.recognition import store

    root, desc = big_index
    idx = Index.open(root)
    vectors = idx.project(idx.descriptors).astype(np.float16)
    path = root / "model" / "ann-vectors-old.npy"
    np.save(path, vectors)
    manifest = root / store.current_name(root)
    m = json.loads(manifest.read_text())
    m["files"].pop("ann_lengths", None)
    m["files"]["ann_vectors"] = "model/ann-vectors-old.npy"
    manifest.write_text(json.dumps(m))

    old = Index.open(root)
    s = old.searcher
    assert isinstance(s.rescore, StoredRows) and isinstance(s.rescore.vectors, np.memmap)
    q = vectors[:20].astype(np.float32)
    sims, rows = s.search(q / np.linalg.norm(q, axis=1, keepdims=True), 5)
    assert (rows[:, 0] == np.arange(20)).all()
    old.save(root)
    names = {p.name for p in (root / "model").iterdir()}
    assert any(n.startswith("ann-vectors-") and n != path.name for n in names)


#: A writer process: publishes one segment of ``n`` new random rows (``add_segments``, no
#: refit) to the index at ``root``, past a lowered compressed-search threshold, so that the
#: write rebuilds the compressed search. With "hang" it stops right after that rebuild, before
#: the new version is committed, for the test to kill it there.
WRITER = """
import hashlib, sys, time
import numpy as np
from landmark_finder.core import search
from landmark_finder.recognition import index as index_mod, store
from landmark_finder.recognition.index import PhotoRecord
from landmark_finder.recognition.indexing import WriteOptions, add_segments

search.COMPRESSED_MIN = index_mod.COMPRESSED_MIN = 2000
root, tag, n, hang = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "hang"
if hang:
    build = search.CompressedSearch.build.__func__

    def hanging(cls, *args, **kwargs):
        out = build(cls, *args, **kwargs)
        print("rebuilt", flush=True)
        time.sleep(600)
        return out

    search.CompressedSearch.build = classmethod(hanging)
rng = np.random.default_rng(int(hashlib.sha256(tag.encode()).hexdigest()[:8], 16))
desc = rng.normal(size=(n, 64))
desc = (desc / np.linalg.norm(desc, axis=1, keepdims=True)).astype(np.float32)
records = [
    PhotoRecord("lm1", f"/photos/{tag}-{i}.jpg", hashlib.sha256(f"{tag}{i}".encode()).hexdigest())
    for i in range(n)
]
seg = store.write_segment(root, records, desc)
add_segments(root, [seg], options=WriteOptions(refit=False))
"""


def _writer(root: Path, tag: str, n: int, hang: bool = False) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [str(root), tag, str(n), "hang" if hang else "-"]
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_compressed_index_writers_at_once_and_kill_9(big_index):
    """Writers of an index searched compressed, in real processes: two at once lose no row
    and each rebuild reuses the saved rotation and codebooks; one killed with SIGKILL after
    rebuilding the compressed search, before committing, leaves the previous version, and
    the next writer publishes over its debris."""
    root, _ = big_index
    first = learned_codes(Index.open(root).searcher.index)
    procs = [_writer(root, tag, 5) for tag in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    idx = Index.open(root)
    paths = {r.path for r in idx.records}
    assert len(idx.records) == N + 10
    assert all(f"/photos/{t}-{i}.jpg" in paths for t in "ab" for i in range(5))
    s = idx.searcher
    assert isinstance(s, CompressedSearch) and s.ntotal == N + 10  # read, not rebuilt
    for a, b in zip(learned_codes(s.index), first, strict=True):
        np.testing.assert_array_equal(a, b)

    killed = _writer(root, "c", 5, hang=True)
    assert killed.stdout.readline().strip() == "rebuilt"  # mid-write: built, not committed
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    idx = Index.open(root)  # the previous version, whole
    assert len(idx.records) == N + 10 and idx.searcher.ntotal == N + 10
    q = idx.project(idx.descriptors[:20])
    assert (idx.searcher.search(q, 1)[1][:, 0] == np.arange(20)).all()
    last = _writer(root, "d", 5)
    _, err = last.communicate(timeout=300)
    assert last.returncode == 0, err
    idx = Index.open(root)
    assert len(idx.records) == N + 15
    assert {g.name for g in idx.segments} == {p.name for p in (root / "segments").iterdir()}

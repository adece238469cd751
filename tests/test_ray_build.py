"""`index build --ray`: describing on a (local, 2-CPU, loopback) Ray instance gives the index a
local build gives. Slow: Ray needs ~10 s to start on 2 idle cores, much more on a busy one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import INDIAN, link_gallery

pytestmark = pytest.mark.slow

LANDMARKS = ["taj_mahal", "charminar", "india_gate"]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    yield ray
    ray.shutdown()


def _build(gallery: Path, out: Path, ray: str | None):
    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.core.descriptors import Preprocessing
    from landmark_finder.recognition.indexing import IndexConfig, WriteOptions, build_index

    return build_index(
        gallery,
        out,
        load_catalog(INDIAN / "catalog.csv"),
        IndexConfig("efficientnet-lite0", Preprocessing(size=224)),
        options=WriteOptions(workers=1, ray=ray),
    )


def test_ray_build_equals_local_build(ray_local, tmp_path: Path):
    from landmark_finder.recognition.index import Index

    (tmp_path / "gallery").mkdir()
    gallery = link_gallery(tmp_path / "gallery", LANDMARKS, 4)
    (gallery / "charminar" / "broken.jpg").write_bytes(b"not a photo")
    _, local_report = _build(gallery, tmp_path / "local", None)
    _, ray_report = _build(gallery, tmp_path / "ray", "")  # "" = the running local instance
    assert ray_local.is_initialized()
    assert len(ray_report.skipped) == len(local_report.skipped) == 1
    assert "broken.jpg" in ray_report.skipped[0]

    a, b = Index.open(tmp_path / "local"), Index.open(tmp_path / "ray")
    assert len(a.records) == len(b.records) == 12
    assert [(r.landmark_id, r.path, r.sha256) for r in a.records] == [
        (r.landmark_id, r.path, r.sha256) for r in b.records
    ]
    np.testing.assert_allclose(a.descriptors, b.descriptors, atol=1e-5)
    assert a.local is not None and b.local is not None
    for i in range(len(a.records)):
        np.testing.assert_array_equal(a.local[i].xy, b.local[i].xy)
        np.testing.assert_array_equal(a.local[i].desc, b.local[i].desc)

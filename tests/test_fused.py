"""A fused descriptor (``<backbone>+sscd``): one ONNX graph running the backbone and SSCD side
by side, whitened part by part, through index build, reopening and recognition."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import INDIAN, link_gallery, need_shared

FUSED = "efficientnet-lite0+sscd"


@pytest.fixture(scope="module")
def photo():
    from landmark_finder.core.images import load_image

    need_shared()
    return load_image(sorted((INDIAN / "queries" / "charminar").glob("*.jpg"))[0], max_side=512)


def test_fused_descriptor_is_both_models_side_by_side(photo):
    """Each part is its model's unit vector over sqrt(2): the backbone's as the plain extractor
    gives it, SSCD's as its own graph gives it from the same 8-bit pixels; the torch-free
    start (``Extractor.cached``) runs the same graph."""
    import onnxruntime as ort

    from landmark_finder.backbones.sscd import ADDONS, blocks
    from landmark_finder.core.descriptors import Extractor, network_input

    ex = Extractor.create(FUSED, threads=1)
    plain = Extractor.create("efficientnet-lite0", threads=1)
    d = ex.describe(photo)
    assert d.shape == (1280 + 512,) and ex.dim == 1792
    assert blocks(FUSED, ex.dim) == (1280, 512) and blocks("efficientnet-lite0", 1280) == ()
    np.testing.assert_allclose(np.linalg.norm(d[:1280]), 2**-0.5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(d[1280:]), 2**-0.5, atol=1e-5)
    assert float(d[:1280] @ plain.describe(photo)) * 2**0.5 > 0.9999
    x = network_input(photo, ex.preprocessing.size, ex.mean, ex.std)[0]
    pixels = np.clip(np.round((x * ex.std + ex.mean) * 255), 0, 255).astype(np.uint8)
    sess = ort.InferenceSession(str(ADDONS["sscd"].path()), providers=["CPUExecutionProvider"])
    s = sess.run(None, {"image": pixels.transpose(1, 2, 0)[None]})[0][0]
    assert float(d[1280:] @ s / np.linalg.norm(s)) * 2**0.5 > 0.999
    cached = Extractor.cached(FUSED, ex.weights_hash, ex.preprocessing, threads=1)
    assert cached is not None and cached.dim == 1792
    np.testing.assert_allclose(cached.describe(photo), d, atol=1e-5)


def test_compare_reports_both_networks_of_a_fused_descriptor():
    from landmark_finder.training.compare import network_size

    plain, fused = network_size("efficientnet-lite0"), network_size(FUSED)
    assert 20 < fused[0] - plain[0] < 30  # SSCD: a ResNet-50, ~24 M parameters
    assert 25 < fused[1] - plain[1] < 32  # its 28 MB int8 graph


def test_unknown_addon_is_a_one_line_error():
    from landmark_finder.core.descriptors import Extractor
    from landmark_finder.errors import BackboneError

    with pytest.raises(BackboneError, match="efficientnet-lite2\\+sscd"):
        Extractor.create("efficientnet-lite0+clip")


def test_block_whitening_whitens_each_part_and_rescoring_follows():
    """Parts are whitened on their own (block-diagonal projection), each made unit length:
    a similarity is the mean of the parts' whitened cosines; re-scoring from the raw rows
    with one length per part (``ProjectedRows``) gives the same numbers."""
    from landmark_finder.core.search import ProjectedRows
    from landmark_finder.core.whitening import fit_whitening

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(12), 8)
    a = rng.normal(size=(12, 40))[labels] + rng.normal(size=(96, 40))
    b = 5 * (rng.normal(size=(12, 24))[labels] + rng.normal(size=(96, 24)))
    x = np.concatenate([a, b], 1).astype(np.float32)
    w = fit_whitening(x, labels, blocks=(40, 24))
    assert w is not None and w.blocks == (40, 24) and w.projection.shape == (64, 64)
    assert not w.projection[:40, 40:].any() and not w.projection[40:, :40].any()
    y, lengths = w.with_lengths(x)
    assert lengths.shape == (96, 2)
    np.testing.assert_allclose(np.linalg.norm(y[:, :40], axis=1), 2**-0.5, atol=1e-5)
    wa, wb = fit_whitening(a, labels), fit_whitening(b, labels)
    want = (wa(a) @ wa(a[0]) + wb(b) @ wb(b[0])) / 2
    np.testing.assert_allclose(y @ y[0], want, atol=1e-4)
    rows = np.arange(0, 96, 5)
    for raw in (x, x.astype(np.float16)):
        got = ProjectedRows(raw, w.mean, w.projection, lengths, w.blocks)(y[0], rows)
        np.testing.assert_allclose(
            got, (y @ y[0])[rows], atol=3e-3 if raw.dtype == np.float16 else 1e-5
        )


def test_fused_index_builds_reopens_and_recognizes(tmp_path: Path):
    """Few-shot gallery (3 photos of 4 landmarks, views, keypoints): the whitening keeps its
    parts when the index is reopened, queries are answered and their landmarks placed by
    geometry alone; regions of the photo are described from one pass of each network (the
    whole map's region is the photo's fused descriptor), so heatmaps and the dense search
    work on it, and the web service offers heatmaps."""
    from fastapi.testclient import TestClient

    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.core.descriptors import Preprocessing
    from landmark_finder.core.images import load_image
    from landmark_finder.explain.dense import dense_model, region_descriptors
    from landmark_finder.explain.locate import recognize_all
    from landmark_finder.recognition.index import Index
    from landmark_finder.recognition.indexing import IndexConfig, build_index, few_photos_advice
    from landmark_finder.recognition.recognizer import Recognizer
    from landmark_finder.web import create_app

    need_shared()
    lids = ["charminar", "taj_mahal", "india_gate", "golden_temple"]
    gallery = link_gallery(tmp_path, lids, 3)
    out = tmp_path / "index"
    cfg = IndexConfig(FUSED, Preprocessing(size=224, views="crops"))
    build_index(gallery, out, load_catalog(INDIAN / "catalog.csv"), cfg)
    idx = Index.open(out)
    assert idx.backbone == FUSED and idx.blocks == (1280, 512)
    assert idx.whitening is not None and idx.whitening.blocks == (1024, 512)
    rec = Recognizer.open(out)
    for lid in ("charminar", "taj_mahal"):
        q = sorted((INDIAN / "queries" / lid).glob("*.jpg"))[0]
        r, found = recognize_all(rec, q)
        assert r.candidates[0].landmark.id == lid
        assert found.landmarks and found.landmarks[0].landmark.id == lid
    model = dense_model(idx)
    q0 = load_image(sorted((INDIAN / "queries" / "taj_mahal").glob("*.jpg"))[0], 512)
    maps = model.feature_maps(q0, 224)
    assert [m.shape[0] for m in maps] == [1280, 2048]  # Lite0's map and SSCD's (ResNet-50)
    whole = np.array([[0, 0, maps[0].shape[2], maps[0].shape[1]]])
    z = region_descriptors(model, idx, maps, whole)[0]
    assert float(z @ rec.describe(q0)) > 0.999
    # built for few photos: no advice; the same gallery without SSCD is told how
    assert few_photos_advice(idx) == []
    (hint,) = few_photos_advice(replace(idx, backbone="efficientnet-lite0"))
    assert "median 3" in hint and "--backbone efficientnet-lite0+sscd" in hint
    # without geometry (verification off), a landmark is still placed: by the dense search
    import random

    from PIL import Image

    from landmark_finder.explain.composites import iou, paste
    from landmark_finder.explain.locate import locate

    plain = Recognizer.open(out, verify=False)
    street = sorted((INDIAN.parent / "distractors").glob("*.jpg"))[0]  # an everyday photo
    background = load_image(street, 512).resize((640, 400), Image.Resampling.LANCZOS)
    taj = sorted((INDIAN / "queries" / "taj_mahal").glob("*.jpg"))[0]
    comp = paste(load_image(taj, 512), background, random.Random(0), "taj_mahal", (0.4, 0.5))
    res = locate(plain, comp.image, "taj_mahal")
    assert res.landmark_id == "taj_mahal" and res.polygon is not None
    assert iou(res.boxes[0].xyxy, comp.box) >= 0.2  # on the pasted photo (tiny index)
    res = locate(plain, load_image(taj, 512))  # not given: the photo's recognized landmark
    assert res.landmark_id == "taj_mahal" and res.boxes
    with TestClient(create_app(rec)) as c:
        assert c.get("/health").json()["heatmaps"] is True
        with open(q, "rb") as f:
            res = c.post("/api/recognize", files={"photo": ("q.jpg", f, "image/jpeg")})
        assert res.status_code == 200 and res.json()["heatmap_url"]
        png = c.get(res.json()["heatmap_url"])
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_sscd_cut_is_cached_and_a_damaged_cache_rebuilt(tmp_path, monkeypatch, photo):
    """SSCD cut where it pools is written to the cache once (trunk, then its tail), read back
    on the next start, and rebuilt when the tail file is damaged; every copy gives the same
    descriptors as SSCD's own graph."""
    import onnxruntime as ort

    from landmark_finder.backbones.sscd import ADDONS
    from landmark_finder.explain import dense

    monkeypatch.setenv("LANDMARK_FINDER_CACHE", str(tmp_path))
    addon = ADDONS["sscd"]
    pixels = np.asarray(photo.resize((224, 160)), np.uint8)[None]
    sess = ort.InferenceSession(str(addon.path()), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: pixels})[0][0]

    def embedding(m) -> np.ndarray:
        fm = m.trunk(pixels)[0]
        whole = np.array([[0, 0, fm.shape[2], fm.shape[1]]])
        return m.split.tail(dense._gem_boxes(fm, whole, m.split.gem_p, m.split.eps))[0]

    first = dense._addon_map(addon)
    (tail,) = list(tmp_path.rglob("dense-*.npz"))
    assert tail.with_suffix(".onnx").exists()
    again = dense._addon_map(addon)  # read back
    tail.write_bytes(b"not an npz")
    rebuilt = dense._addon_map(addon)
    for m in (first, again, rebuilt):
        assert float(embedding(m) @ want) > 0.999

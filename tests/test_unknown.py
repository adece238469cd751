"""An honest "unknown" with any gallery: content checks, built-in negatives, small galleries."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import INDIAN, SHARED, SMALL_LANDMARKS, need_shared
from landmark_finder.core.content import content_problem
from landmark_finder.core.images import iter_image_files, load_image
from landmark_finder.recognition import negatives as neg


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def hostile_pictures() -> dict[str, bytes]:
    """Blank, noise, gradient, tiny and transparent pictures, as PNG files would hold them."""
    rng = np.random.default_rng(1)
    out = {}
    for name, c in [
        ("black", (0, 0, 0)),
        ("white", (255, 255, 255)),
        ("grey", (128, 128, 128)),
        ("red", (220, 20, 20)),
        ("sky-blue", (135, 206, 235)),
    ]:
        out[name] = _png(Image.new("RGB", (640, 480), c))
    out["noise"] = _png(Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)))
    ramp = np.linspace(0, 255, 640)[None, :, None] * np.ones((480, 1, 3))
    ramp[..., 2] = 255 - ramp[..., 2]
    out["gradient"] = _png(Image.fromarray(ramp.astype(np.uint8)))
    out["1x1"] = _png(Image.new("RGB", (1, 1), (90, 120, 200)))
    out["transparent"] = _png(Image.new("RGBA", (300, 200), (0, 0, 0, 0)))
    out["transparent-big"] = _png(Image.new("RGBA", (2000, 1500), (10, 200, 10, 0)))
    return out


EXPECTED = {
    "black": "blank",
    "white": "blank",
    "grey": "blank",
    "red": "blank",
    "sky-blue": "blank",
    "noise": "noise",
    "gradient": "featureless",
    "1x1": "too small",
    "transparent": "fully transparent",
    "transparent-big": "fully transparent",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_content_checks_name_the_problem(name):
    img = load_image(hostile_pictures()[name], max_side=512, name=name)
    assert EXPECTED[name] in content_problem(img)


def test_content_checks_pass_real_photos():
    root = need_shared()
    photos = [p for lid in SMALL_LANDMARKS for p in sorted((root / "queries" / lid).iterdir())[:6]]
    photos += iter_image_files(SHARED / "distractors")[:30]
    flagged = [p for p in photos if content_problem(load_image(p, max_side=512))]
    assert flagged == []


def test_negative_pictures_are_fixed_and_varied():
    a = [(n, np.asarray(im)) for n, im in neg.negative_images()]
    b = [(n, np.asarray(im)) for n, im in neg.negative_images()]
    assert [n for n, _ in a] == [n for n, _ in b] and len(a) >= 90
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b, strict=True))
    assert sum(n.startswith(("china", "flower", "grace_hopper", "ascent", "camera")) for n, _ in a)


def test_shipped_negatives_match_the_installed_weights(monkeypatch):
    """The default backbones' descriptors ship; they are used as they are, not recomputed."""
    from landmark_finder.core.descriptors import Extractor, Preprocessing

    ex = Extractor.create("efficientnet-lite0", Preprocessing(size=224))
    monkeypatch.setattr(neg, "compute", lambda _: pytest.fail("recomputed a shipped set"))
    arr = neg.builtin_negatives(ex)
    assert arr.shape == (len(list(neg.negative_images())), ex.dim)
    name, meta = neg._key(ex)
    info = json.loads((neg.SHIPPED / f"{name}.json").read_text("utf-8"))
    assert info["key"]["weights_hash"] == ex.weights_hash and info["count"] == len(arr)
    fresh = ex.describe(next(iter(neg.negative_images()))[1])
    assert float(fresh @ arr[0]) > 0.999  # float16 storage loses nothing that matters


def test_other_preprocessing_gets_negatives_computed_and_cached(monkeypatch, tmp_path):
    from landmark_finder.core.descriptors import Extractor, Preprocessing

    monkeypatch.setenv("LANDMARK_FINDER_CACHE", str(tmp_path))
    ex = Extractor.create("efficientnet-lite0", Preprocessing(size=128))
    arr = neg.builtin_negatives(ex)
    assert arr.shape[1] == ex.dim and np.allclose(np.linalg.norm(arr, axis=1), 1, atol=1e-3)
    assert len(list((tmp_path / "negatives").glob("*.npy"))) == 1
    monkeypatch.setattr(neg, "compute", lambda _: pytest.fail("not read from the cache"))
    assert np.allclose(neg.builtin_negatives(ex), arr, atol=1e-3)


def test_small_gallery_warning(small_index: Path):
    from landmark_finder.recognition.index import Index
    from landmark_finder.recognition.indexing import small_gallery_warnings

    index = Index.open(small_index)
    (w,) = small_gallery_warnings(index)
    assert "only 5 landmarks" in w and "fewer than 10 photos" in w
    assert index.negatives is not None and index.calibration_report["n_builtin"] > 0
    index.records = [r for r in index.records for _ in range(2)] * 2  # 20 photos each
    assert "fewer than" not in small_gallery_warnings(index)[0]


@pytest.fixture(scope="module")
def small_recognizer(small_index: Path):
    from landmark_finder.recognition.recognizer import Recognizer

    return Recognizer.open(small_index)


def test_small_gallery_calls_hostile_pictures_unknown(small_recognizer):
    for name, data in hostile_pictures().items():
        r = small_recognizer.recognize(data, name=f"{name}.png")
        assert r.status == "unknown", (name, r.confidence)
        assert EXPECTED[name] in r.reason and r.candidates == []
        assert r.to_dict()["reason"] == r.reason


def test_small_gallery_calls_everyday_photos_unknown_and_still_knows_its_landmarks(
    small_recognizer,
):
    """5 landmarks × 8 photos: COCO everyday photos are unknown, held-out queries still named."""
    distractors = iter_image_files(SHARED / "distractors")[:40]
    said = [small_recognizer.recognize(p) for p in distractors]
    assert sum(r.status == "unknown" for r in said) >= 0.95 * len(said)
    queries = [p for lid in SMALL_LANDMARKS for p in sorted((INDIAN / "queries" / lid).iterdir())]
    queries = queries[::3]
    right = 0
    for p in queries:
        r = small_recognizer.recognize(p)
        right += r.status == "recognized" and r.landmark.id == p.parent.name
    assert right >= 0.4 * len(queries)

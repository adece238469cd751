"""Near-duplicate detection on real photos: copies are caught, look-alike photos are not."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import need_shared
from landmark_finder.core.images import load_image
from landmark_finder.dataset.duplicates import find_duplicates, keep_order
from landmark_finder.dataset.hashing import N_CODES, close_pairs, hamming, perceptual_codes
from landmark_finder.dataset.match import compare_photos
from landmark_finder.dataset.scan import Entry, examine

#: Different photos from the same spot that hash close to each other (found on the shared set):
#: a black-and-white archive photo vs a colour one, and the closest whole-photo hash pair.
LOOKALIKES = [
    ("gallery/gateway_of_india/25d51295a176.jpg", "gallery/gateway_of_india/34370c545e63.jpg"),
    ("gallery/gateway_of_india/3f4f57d14982.jpg", "gallery/gateway_of_india/48573c51f29d.jpg"),
    ("gallery/humayuns_tomb/330142b0f840.jpg", "queries/humayuns_tomb/32197c996c71.jpg"),
]


def _photo(path: Path, landmark: str = "x", rel: str | None = None):
    return examine(Entry(path, rel or f"{landmark}/{path.name}", landmark, None, "image"))


def _save(img: Image.Image, path: Path, quality: int = 90) -> Path:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def source() -> Path:
    return sorted((need_shared() / "gallery" / "india_gate").glob("*.jpg"))[5]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda im: im.resize((im.width // 3, im.height // 3)), id="resized-to-a-third"
        ),
        pytest.param(lambda im: im, id="recompressed"),
        pytest.param(
            lambda im: im.crop((im.width // 16, im.height // 20, im.width * 15 // 16, im.height)),
            id="cropped",
        ),
        pytest.param(
            lambda im: im.crop((0, 0, im.width * 9 // 10, im.height * 19 // 20)).resize(
                (im.width // 2, im.height // 2)
            ),
            id="cropped-and-resized",
        ),
    ],
)
def test_copies_are_grouped_and_the_larger_is_kept(source, tmp_path, make):
    copy = _save(make(load_image(source)), tmp_path / "copy.jpg", quality=40)
    a, b = _photo(source, "india_gate"), _photo(copy, "elsewhere")
    groups = find_duplicates([b, a])
    assert len(groups) == 1
    g = groups[0]
    assert g.kind == "near" and g.keep is a and g.cross_landmark
    assert "copy" in g.evidence[b.entry.rel]


def test_different_photos_of_one_landmark_are_not_grouped():
    root = need_shared()
    for rel_a, rel_b in LOOKALIKES:
        a, b = _photo(root / rel_a), _photo(root / rel_b)
        assert find_duplicates([a, b]) == [], (rel_a, rel_b)
        m = compare_photos(
            load_image(root / rel_a, max_side=256), load_image(root / rel_b, max_side=256)
        )
        assert not m.same and m.residual > 0.28


def test_exact_copies_group_by_bytes(source, tmp_path):
    dup = tmp_path / "same.jpg"
    dup.write_bytes(source.read_bytes())
    a, b = _photo(source, rel="b/first.jpg"), _photo(dup, rel="a/second.jpg")
    (g,) = find_duplicates([a, b])
    assert g.kind == "exact" and g.keep.entry.rel == "a/second.jpg"  # ties: by path
    assert g.evidence["b/first.jpg"] == "identical bytes"


def test_augmented_variant_is_not_a_duplicate_of_its_source(source, tmp_path):
    folder = tmp_path / "india_gate"
    folder.mkdir()
    src = folder / "photo.jpg"
    src.write_bytes(source.read_bytes())
    _save(load_image(source).resize((200, 150)), folder / "photo__aug1.jpg")
    a = _photo(src, rel="india_gate/photo.jpg")
    b = _photo(folder / "photo__aug1.jpg", rel="india_gate/photo__aug1.jpg")
    assert a.entry.family == b.entry.family
    assert find_duplicates([a, b]) == []


def test_perceptual_codes_shape_and_crop_codes():
    img = load_image(
        sorted((need_shared() / "gallery" / "taj_mahal").glob("*.jpg"))[0], max_side=256
    )
    codes = perceptual_codes(img)
    assert codes.shape == (N_CODES, 16) and codes.dtype == np.uint8
    assert (
        hamming(codes[0], perceptual_codes(img.resize((img.width // 2, img.height // 2)))[0]) <= 10
    )
    w, h = img.size
    crop = perceptual_codes(img.crop((w * 8 // 100, h * 8 // 100, w * 92 // 100, h * 92 // 100)))
    (pair,) = close_pairs([codes, crop])
    assert pair.best < pair.whole  # the crop matches a crop code better than the whole photo


def test_keep_order_prefers_resolution_then_size(source, tmp_path):
    big = _photo(source, rel="z/big.jpg")
    small = _photo(
        _save(load_image(source).resize((100, 80)), tmp_path / "s.jpg"), rel="a/small.jpg"
    )
    assert sorted([small, big], key=keep_order)[0] is big


def test_compare_photos_handles_tiny_and_flat_images():
    flat = Image.new("RGB", (120, 90), (200, 200, 200))
    assert compare_photos(flat, Image.new("RGB", (8, 8))).same is False
    assert compare_photos(flat, flat.resize((60, 45))).same  # two blank images are the same picture

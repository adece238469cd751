"""Heatmaps and ``locate`` on real photos: landmark photos pasted into everyday photos.

The composites follow the issue's acceptance test: a gallery photo of an indexed landmark
pasted at a random position and at 35–70 % of the background's width into a photo from
``distractors/``; 20 of them, seeded. Timing is measured in ``bench/locate.py``, not here.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import SHARED, SMALL_LANDMARKS, assert_png
from landmark_finder.cli.main import app
from landmark_finder.core.images import load_image
from landmark_finder.explain.composites import iou, paste

runner = CliRunner()
N_COMPOSITES = 20


@pytest.fixture(scope="module")
def recognizer(small_index):
    from landmark_finder.recognition.recognizer import Recognizer

    return Recognizer.open(small_index)


@pytest.fixture(scope="module")
def composites(small_gallery):
    rng = random.Random(0)
    photos = [p for lid in SMALL_LANDMARKS for p in sorted((small_gallery / lid).glob("*.jpg"))]
    backgrounds = sorted((SHARED / "distractors").glob("*.jpg"))
    out = []
    for _ in range(N_COMPOSITES):
        photo, bg = rng.choice(photos), rng.choice(backgrounds)
        out.append(paste(load_image(photo, 512), load_image(bg, 512), rng, photo.parent.name))
    return out


# --- locate ------------------------------------------------------------------------------------


def test_locate_finds_the_pasted_landmark(recognizer, composites):
    from landmark_finder.explain.locate import locate

    ious = []
    for c in composites:
        r = locate(recognizer, c.image, c.landmark_id)
        assert r.landmark_id == c.landmark_id and r.boxes
        scores = [b.score for b in r.boxes]
        assert scores == sorted(scores, reverse=True)
        for b in r.boxes:
            assert 0 <= b.x0 < b.x1 <= c.image.width and 0 <= b.y0 < b.y1 <= c.image.height
        ious.append(iou(r.boxes[0].xyxy, c.box))
    hits = sum(v >= 0.5 for v in ious)
    assert hits >= 0.8 * len(ious), f"IoU ≥ 0.5 in {hits}/{len(ious)}: {np.round(ious, 2)}"


def test_locate_without_landmark_uses_recognition(recognizer, small_gallery):
    from landmark_finder.explain.locate import locate

    photo = load_image(sorted((small_gallery / "taj_mahal").glob("*.jpg"))[0])
    r = locate(recognizer, photo, max_boxes=1)
    assert r.landmark_id == "taj_mahal" and r.landmark_name == "Taj Mahal"
    assert len(r.boxes) == 1
    d = r.to_dict()
    assert set(d) == {"image", "landmark", "boxes", "seconds", "polygon", "landmarks"}
    assert set(d["boxes"][0]) == {"box", "score"} and len(d["boxes"][0]["box"]) == 4
    assert d["landmarks"][0]["id"] == "taj_mahal" and len(d["polygon"]) == 4


def test_boxes_are_in_original_photo_pixels(recognizer, composites):
    """A photo larger than the working size gets boxes in its own pixels."""
    from landmark_finder.explain.locate import locate

    c = composites[0]
    big = c.image.resize((c.image.width * 3, c.image.height * 3), Image.Resampling.BICUBIC)
    r = locate(recognizer, big, c.landmark_id, max_boxes=1)
    box = r.boxes[0].xyxy
    assert box[2] <= big.width and box[3] <= big.height
    assert iou(box, tuple(3 * v for v in c.box)) >= 0.5


def test_crops_described_two_at_a_time_give_the_same_boxes(recognizer, composites, monkeypatch):
    """The box search describes its crops on two threads over one ONNX session: the boxes
    and scores are those of describing them one by one."""
    from landmark_finder.explain import locate as loc

    def boxes(workers: int):
        monkeypatch.setattr(loc, "CROP_WORKERS", workers)
        return [loc.locate(recognizer, c.image, c.landmark_id).boxes for c in composites[:3]]

    assert boxes(2) == boxes(1)


def test_unknown_landmark_is_a_clear_error(recognizer, composites):
    from landmark_finder.explain.locate import locate

    with pytest.raises(ValueError, match="no reference photos"):
        locate(recognizer, composites[0].image, "eiffel_tower")


def test_tiny_and_flat_photos_do_not_crash(recognizer):
    from landmark_finder.explain.locate import locate

    for im in (Image.new("RGB", (20, 14), (90, 120, 200)), Image.new("L", (300, 40), 128)):
        r = locate(recognizer, im, "taj_mahal")
        for b in r.boxes:
            assert 0 <= b.x0 < b.x1 <= im.width and 0 <= b.y0 < b.y1 <= im.height


def test_max_sum_box_matches_brute_force():
    from landmark_finder.explain.locate import max_sum_box

    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.normal(size=(rng.integers(1, 7), rng.integers(1, 7)))
        best = -np.inf
        h, w = v.shape
        for y0 in range(h):
            for y1 in range(y0 + 1, h + 1):
                for x0 in range(w):
                    for x1 in range(x0 + 1, w + 1):
                        s = v[y0:y1, x0:x1].sum()
                        if s > best:
                            best = s
        got = max_sum_box(v)
        if best <= 0:
            assert got is None
        else:
            y0, x0, y1, x1 = got
            assert v[y0:y1, x0:x1].sum() == pytest.approx(best)


def test_locate_picture_is_a_png(recognizer, composites, tmp_path):
    from landmark_finder.explain.locate import locate

    c = composites[1]
    r = locate(recognizer, c.image, c.landmark_id)
    assert_png(r.save_png(tmp_path / "located.png", c.image))
    drawn = r.draw(c.image)
    assert drawn.size == c.image.size and drawn.tobytes() != c.image.tobytes()


# --- heatmaps ------------------------------------------------------------------------------------


def test_heatmap_is_hotter_on_the_landmark(recognizer, composites):
    from landmark_finder.explain.heatmaps import heatmap

    hotter, inside_all, outside_all = 0, [], []
    for c in composites:
        h = heatmap(recognizer, c.image, c.landmark_id)
        assert h.values.shape == (c.image.height, c.image.width) and h.values.dtype == np.float32
        assert 0.0 <= h.values.min() and h.values.max() == pytest.approx(1.0)
        inside = np.zeros(h.values.shape, bool)
        x0, y0, x1, y1 = c.box
        inside[y0:y1, x0:x1] = True
        hotter += h.values[inside].mean() > h.values[~inside].mean()
        inside_all.append(h.values[inside].mean())
        outside_all.append(h.values[~inside].mean())
    assert hotter >= 0.85 * len(composites), f"hotter inside in {hotter}/{len(composites)}"
    assert np.mean(inside_all) > 2 * np.mean(outside_all)


def test_heatmap_defaults_to_the_top_candidate(recognizer, small_gallery, tmp_path):
    from landmark_finder.explain.heatmaps import heatmap

    photo = load_image(sorted((small_gallery / "charminar").glob("*.jpg"))[1])
    h = heatmap(recognizer, photo)
    assert h.landmark_id == recognizer.recognize(photo).candidates[0].landmark.id
    assert -1.0 <= h.score <= 1.0
    over = h.overlay(photo)
    assert over.size == photo.size and over.mode == "RGB"
    assert_png(h.save_png(tmp_path / "heat.png", photo))
    # an overlay for a differently sized copy of the photo (GUI display size) still works
    assert h.overlay(photo.resize((photo.width // 2, photo.height // 2))).size == (
        photo.width // 2,
        photo.height // 2,
    )


def test_dense_path_reproduces_the_index_descriptor(recognizer, small_gallery):
    """Heatmaps explain the very descriptor recognition uses: same trunk, pooling, whitening."""
    import torch

    from landmark_finder.backbones.layers import gem as gem_pool
    from landmark_finder.explain.dense import dense_model

    photo = load_image(sorted((small_gallery / "india_gate").glob("*.jpg"))[0])
    model = dense_model(recognizer.index)
    fm = model.feature_map(photo, recognizer.index.preprocessing.size)
    pooled = gem_pool(torch.from_numpy(fm)[None], model.gem_p)
    z = model.descriptors(pooled, recognizer.index.whitening)[0]
    assert float(z.numpy() @ recognizer.describe(photo)) > 0.999


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_locate_json(small_index, composites, tmp_path):
    img = tmp_path / "composite.jpg"
    composites[2].image.save(img, quality=95)
    r = runner.invoke(
        app,
        [
            "locate",
            str(small_index),
            str(img),
            "--json",
            "--landmark",
            composites[2].landmark_id,
            "--out",
            str(tmp_path / "loc.png"),
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"image", "landmark", "boxes", "seconds", "polygon", "landmarks"} == set(d)
    assert d["landmark"] == composites[2].landmark_id and d["image"] == str(img)
    assert d["boxes"] and all(set(b) == {"box", "score"} and len(b["box"]) == 4 for b in d["boxes"])
    assert iou(tuple(d["boxes"][0]["box"]), composites[2].box) > 0.3
    assert_png(tmp_path / "loc.png")


def test_cli_locate_bad_input(small_index, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    r = runner.invoke(app, ["locate", str(small_index), str(bad), "--json"])
    assert r.exit_code == 2
    assert "not an image" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["locate", str(small_index), str(bad).replace("notes", "missing")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_cli_heatmap_json(small_index, composites, tmp_path):
    img = tmp_path / "composite.png"
    composites[3].image.save(img)
    out = tmp_path / "heat.png"
    r = runner.invoke(
        app, ["explain", "heatmap", str(small_index), str(img), "--json", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(d) == {"image", "landmark", "score", "heatmap"} and d["heatmap"] == str(out)
    assert_png(out)
    r = runner.invoke(
        app, ["explain", "heatmap", str(small_index), str(img), "--landmark", "nowhere"]
    )
    assert r.exit_code == 2 and "no reference photos" in r.output


def test_cli_recognize_writes_heatmaps(small_index, small_gallery, tmp_path):
    """Two photos with the same name in different folders get two pictures, not one."""
    photos = []
    for lid in ("taj_mahal", "charminar"):
        (tmp_path / lid).mkdir()
        photos.append(tmp_path / lid / "IMG_1.jpg")
        load_image(sorted((small_gallery / lid).glob("*.jpg"))[2]).save(photos[-1])
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    out = tmp_path / "heat"
    r = runner.invoke(
        app,
        [
            "recognize",
            str(small_index),
            *map(str, photos),
            str(bad),
            "--json",
            "--heatmap-dir",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert [row["status"] for row in rows] == ["recognized", "recognized", "error"]
    paths = [row["heatmap"] for row in rows[:2]]
    assert len(set(paths)) == 2 and "heatmap" not in rows[2]
    for p in paths:
        assert_png(p)

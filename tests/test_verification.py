"""Geometric verification on real photos: local features, matching, the index, the evidence."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import INDIAN, SHARED, SMALL_LANDMARKS, assert_png
from landmark_finder.cli.main import app
from landmark_finder.core.images import load_image
from landmark_finder.verify.codes import root_sift
from landmark_finder.verify.keypoints import LocalConfig, LocalStore, extract
from landmark_finder.verify.matching import Matcher, match_features

runner = CliRunner()


@pytest.fixture(scope="module")
def photo(small_gallery) -> Image.Image:
    return load_image(sorted((small_gallery / "charminar").glob("*.jpg"))[0], max_side=512)


def _copy(img: Image.Image, angle: float, scale: float, crop: float) -> Image.Image:
    """Rotated (degrees), rescaled and cropped (fraction cut from each side) copy."""
    out = img.rotate(angle, Image.Resampling.BICUBIC, expand=False)
    out = out.resize(
        (round(out.width * scale), round(out.height * scale)), Image.Resampling.LANCZOS
    )
    dx, dy = round(out.width * crop), round(out.height * crop)
    return out.crop((dx, dy, out.width - dx, out.height - dy))


@pytest.mark.parametrize("method", ["sift", "orb"])
def test_a_photo_matches_a_transformed_copy_of_itself(photo, method):
    cfg = LocalConfig(method)
    q = extract(photo, cfg)
    assert 200 <= len(q) <= cfg.max_keypoints
    for angle, scale, crop in ((0, 0.6, 0.1), (8, 1.0, 0.15), (-10, 0.8, 0.05)):
        r = extract(_copy(photo, angle, scale, crop), cfg)
        m = match_features(q, r, method)
        assert m.inliers >= 40, (angle, scale, crop, m.inliers)
        assert len(m.query_xy) == len(m.ref_xy) == m.inliers


def _opencv_ratio_matches(qd: np.ndarray, rd: np.ndarray, ratio: float):
    """What matching did before ``ratio_matches``: OpenCV's brute-force matcher, one match
    per reference keypoint, in the order a dict of first arrivals keeps."""
    import cv2

    best: dict[int, tuple[float, int]] = {}
    for pair in cv2.BFMatcher(cv2.NORM_L2).knnMatch(qd, rd, k=2):
        if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance:
            a = pair[0]
            if a.trainIdx not in best or a.distance < best[a.trainIdx][0]:
                best[a.trainIdx] = (a.distance, a.queryIdx)
    return [q for _, q in best.values()], list(best)


def test_ratio_matches_are_opencvs_brute_force_matches(photo, small_gallery):
    """The matrix-product matcher gives the pairs OpenCV's matcher gave, in the same order
    (MAGSAC sees them in that order), for a matching pair and for unrelated photos."""
    from landmark_finder.verify.matching import ratio_matches

    cfg = LocalConfig()
    other = load_image(sorted((small_gallery / "taj_mahal").glob("*.jpg"))[0], max_side=512)
    q = root_sift(extract(photo, cfg, query=True).desc)
    pairs = 0
    for img in (_copy(photo, 8, 0.8, 0.1), other):
        r = root_sift(extract(img, cfg).desc)
        qi, ri = ratio_matches(q, r, 0.75)
        want_q, want_r = _opencv_ratio_matches(q, r, 0.75)
        assert qi.tolist() == want_q and ri.tolist() == want_r
        pairs += len(qi)
    assert pairs > 50  # the copy really matched


def test_a_gallery_photo_stores_the_strongest_of_what_a_query_uses(photo):
    cfg = LocalConfig("sift", max_keypoints=300, query_keypoints=900)
    ref, query = extract(photo, cfg), extract(photo, cfg, query=True)
    assert len(ref) == 300 < len(query) <= 900
    # detected alike: the stored keypoints are the query's strongest ones
    np.testing.assert_array_equal(ref.xy, query.xy[:300])
    np.testing.assert_array_equal(ref.desc, query.desc[:300])
    # an index written before the two budgets verified its queries with the stored number
    old = {"method": "sift", "max_keypoints": 1000, "side": 512}
    assert LocalConfig.from_dict(old).query_keypoints == 1000
    assert LocalConfig.from_dict(cfg.to_dict()) == cfg


def test_unrelated_photos_get_few_inliers(small_gallery):
    cfg = LocalConfig()
    landmarks = [
        load_image(sorted((small_gallery / lid).glob("*.jpg"))[0], 512) for lid in SMALL_LANDMARKS
    ]
    everyday = [load_image(p, 512) for p in sorted((SHARED / "distractors").glob("*.jpg"))[:5]]
    feats = [extract(im, cfg) for im in landmarks + everyday]
    counts = [
        match_features(feats[i], feats[j]).inliers
        for i in range(len(landmarks))
        for j in range(len(landmarks), len(feats))
    ]
    counts += [
        match_features(feats[i], feats[j]).inliers
        for i in range(len(landmarks))
        for j in range(i + 1, len(landmarks))
    ]
    assert max(counts) < 15 and np.median(counts) <= 4, counts


def test_blank_and_tiny_photos_have_no_features_and_match_nothing(photo):
    cfg = LocalConfig()
    blank = extract(Image.new("RGB", (640, 480), (120, 160, 200)), cfg)
    tiny = extract(Image.new("RGB", (3, 2), (0, 0, 0)), cfg)
    assert len(blank) == 0 and len(tiny) == 0 and blank.desc.shape == (0, 128)
    assert match_features(extract(photo, cfg), blank).inliers == 0


def test_positions_are_in_the_given_photos_pixels(photo):
    """A photo larger than the analysis size gets positions in its own pixels."""
    big = photo.resize((photo.width * 2, photo.height * 2), Image.Resampling.BICUBIC)
    f = extract(big)
    assert f.xy[:, 0].max() > photo.width and f.xy[:, 0].max() <= big.width
    assert f.xy[:, 1].max() <= big.height


def test_store_round_trip_and_subset(photo, tmp_path):
    cfg = LocalConfig("orb", 300)
    feats = [
        extract(photo, cfg),
        extract(Image.new("RGB", (50, 50)), cfg),
        extract(photo.rotate(5), cfg),
    ]
    store = LocalStore.from_features(cfg, feats)
    store.save(tmp_path)
    back = LocalStore.load(tmp_path, cfg)
    assert len(back) == 3 and len(back[1]) == 0
    np.testing.assert_array_equal(back[2].desc, feats[2].desc)
    np.testing.assert_allclose(back[0].xy, feats[0].xy, atol=0.25)
    sub = back.subset([2, 0])
    np.testing.assert_array_equal(sub[0].desc, feats[2].desc)
    assert store.bytes_per_photo == pytest.approx(sum(map(len, feats)) * 36 / 3)
    np.save(tmp_path / "local_offsets.npy", np.array([0, 5, 3, 9], np.int64))
    with pytest.raises(ValueError, match="inconsistent"):
        LocalStore.load(tmp_path, cfg)


def test_compact_codes_keep_a_photo_matching_its_transformed_copy(photo, tmp_path):
    cfg = LocalConfig("sift", 500)
    assert cfg.codes == 32 and cfg.bytes_per_keypoint == 36
    views = [photo, _copy(photo, 8, 1.0, 0.15), _copy(photo, -10, 0.8, 0.05), photo.rotate(3)]
    views.append(Image.new("RGB", (64, 64), "gray"))  # a blank: no keypoints at all
    feats = [extract(v, cfg) for v in views]
    store = LocalStore.from_features(cfg, feats)  # learns its codebook from these photos
    assert store.codebook is not None and store.desc.shape == (sum(map(len, feats)), 32)
    decoded = store[1].desc
    assert decoded.dtype == np.float32 and decoded.shape == (len(feats[1]), 128)
    err = np.linalg.norm(decoded - root_sift(feats[1].desc), axis=1)
    assert err.mean() < 0.2  # root-SIFT vectors have unit length
    assert len(feats[4]) == 0 and store[4].desc.shape == (0, 128)
    q = extract(photo, cfg, query=True)
    raw = LocalStore.from_features(replace(cfg, codes=0), feats)
    for row in (1, 2):
        coded, exact = Matcher(q, store)(row).inliers, Matcher(q, raw)(row).inliers
        assert coded >= 40 and coded >= 0.7 * exact, (row, coded, exact)
    # saved and loaded with its codebook; a subset copies the codes as they are
    store.save(tmp_path)
    back = LocalStore.load(tmp_path, cfg)
    np.testing.assert_array_equal(back.desc, store.desc)
    np.testing.assert_array_equal(
        back.subset([2]).desc, store.desc[store.offsets[2] :][: len(feats[2])]
    )
    # photos added later are encoded with the same codebook
    more = back.extend([feats[0]])
    assert more.codebook is back.codebook
    np.testing.assert_array_equal(more.desc[-len(feats[0]) :], store.desc[: len(feats[0])])
    (tmp_path / "local_codebook.npy").unlink()
    with pytest.raises(FileNotFoundError):
        LocalStore.load(tmp_path, cfg)


def test_too_few_keypoints_to_learn_codes_from_are_stored_raw():
    cfg = LocalConfig("sift", 500)
    small = extract(Image.new("RGB", (64, 64), "gray"), cfg)  # a blank: no keypoints
    store = LocalStore.from_features(cfg, [small, small])
    assert store.config.codes == 0 and store.codebook is None
    assert LocalConfig("orb").codes == 0  # binary descriptors are stored as they are


# --- through the recognizer and the index --------------------------------------------------------


@pytest.fixture(scope="module")
def recognizer(small_index):
    from landmark_finder.recognition.recognizer import Recognizer

    return Recognizer.open(small_index)  # the default: verification skipped when certain


def test_index_stores_keypoints_and_a_verified_model(recognizer):
    idx = recognizer.index
    assert idx.local is not None and len(idx.local) == len(idx.records)
    assert idx.verified is not None and len(idx.verified.calibrator.weights) == 3
    assert recognizer.verify


@pytest.fixture(scope="module")
def always(small_index):
    from landmark_finder.recognition.recognizer import Recognizer

    return Recognizer.open(small_index, always_verify=True)


def test_recognition_is_verified_with_evidence(always):
    queries = sorted((INDIAN / "queries" / "taj_mahal").glob("*.jpg"))[:3]
    for q in queries:
        r = always.recognize(q)
        assert r.verified and r.landmark is not None and r.landmark.id == "taj_mahal"
        assert r.candidates[0].inliers is not None
        ev = r.to_dict()["evidence"]
        assert set(ev) == {"reference_image", "inliers", "global_similarity"}
        assert "/taj_mahal/" in ev["reference_image"] and ev["inliers"] == r.candidates[0].inliers
        assert -1.0 <= ev["global_similarity"] <= 1.0


def test_chance_matches_do_not_make_unknown_places_confident(always, small_index):
    """Everyday photos: verification must not answer more of them than global search alone."""
    from landmark_finder.recognition.recognizer import Recognizer

    plain = Recognizer.open(small_index, verify=False)
    photos = sorted((SHARED / "distractors").glob("*.jpg"))[:60]  # chance inliers are rare
    with_v = [always.recognize(p) for p in photos]
    without = [plain.recognize(p) for p in photos]
    assert all(r.verified for r in with_v) and not any(r.verified for r in without)
    # This tiny index has no distractors to learn from, so its confidences for everyday photos
    # sit near 0.5 either way and the two calibrators differ by a few points of refit noise.
    # What must not happen: inliers found by chance lifting a photo's confidence.
    raised = np.array([a.confidence - b.confidence for a, b in zip(with_v, without, strict=False)])
    assert raised.max() < 0.1 and raised.mean() < 0.02, np.round(raised, 2)
    assert any(0 < r.evidence.inliers for r in with_v)  # chance inliers were found, and ignored


@pytest.mark.slow  # two refits; test_segments round-trips add/remove/compact by default
def test_add_and_remove_keep_keypoints_in_step(small_index, small_gallery, tmp_path):
    from landmark_finder.recognition.index import Index
    from landmark_finder.recognition.indexing import add_photos, remove_photos

    idx_dir = tmp_path / "index"
    shutil.copytree(small_index, idx_dir)
    before = Index.open(idx_dir)
    new = sorted((INDIAN / "gallery" / "charminar").glob("*.jpg"))[8:11]
    add_photos(idx_dir, [("charminar", p) for p in new])
    after = Index.open(idx_dir)
    assert len(after.local) == len(after.records) == len(before.records) + 3
    # the added photo's keypoints are its own: it matches itself perfectly
    row = next(i for i, r in enumerate(after.records) if r.path == str(new[1].resolve()))
    self_match = match_features(after.local[row], after.local[row])
    assert self_match.inliers >= 0.9 * len(after.local[row]) - 5
    removed, _ = remove_photos(idx_dir, ["taj_mahal"])
    last = Index.open(idx_dir)
    assert removed == 8 and len(last.local) == len(last.records) == len(after.records) - 8
    kept = [i for i, r in enumerate(after.records) if r.landmark_id != "taj_mahal"]
    np.testing.assert_array_equal(last.local[len(kept) - 1].desc, after.local[kept[-1]].desc)


def test_global_only_index_and_explicit_verify(small_gallery, tmp_path):
    from landmark_finder.core.descriptors import Preprocessing
    from landmark_finder.recognition.index import LandmarkIndexError
    from landmark_finder.recognition.indexing import IndexConfig, build_index
    from landmark_finder.recognition.recognizer import Recognizer

    idx_dir = tmp_path / "plain"
    build_index(
        small_gallery,
        idx_dir,
        config=IndexConfig("efficientnet-lite0", Preprocessing(size=224), local=None),
    )
    rec = Recognizer.open(idx_dir)
    assert not rec.verify and rec.index.local is None
    r = rec.recognize(sorted((small_gallery / "charminar").glob("*.jpg"))[0])
    assert not r.verified and r.evidence is not None and r.evidence.inliers is None
    with pytest.raises(LandmarkIndexError, match="no local features"):
        Recognizer.open(idx_dir, verify=True)


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_recognize_evidence_pictures_and_flags(small_index, tmp_path):
    photos = [
        sorted((INDIAN / "queries" / lid).glob("*.jpg"))[0] for lid in ("charminar", "india_gate")
    ]
    out = tmp_path / "evidence"
    r = runner.invoke(
        app,
        [
            "recognize",
            str(small_index),
            *map(str, photos),
            "--json",
            "--evidence-dir",
            str(out),
            "--verify-top",
            "2",
            "--always-verify",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.strip().splitlines()]
    for row in rows:
        assert row["verified"] is True
        ev = row["evidence"]
        assert isinstance(ev["inliers"], int) and ev["picture"].endswith(".png")
        assert_png(ev["picture"], 200)
        assert sum(c["inliers"] is not None for c in row["candidates"]) <= 2  # --verify-top 2

    # the default may skip verification of a certain answer; the picture still gets its pair
    args = ["recognize", str(small_index), *map(str, photos), "--json", "--evidence-dir"]
    r = runner.invoke(app, [*args, str(tmp_path / "default")])
    for row in map(json.loads, r.stdout.strip().splitlines()):
        assert isinstance(row["evidence"]["inliers"], int), row
        assert_png(row["evidence"]["picture"], 200)

    r = runner.invoke(app, ["recognize", str(small_index), str(photos[0]), "--json", "--no-verify"])
    row = json.loads(r.stdout)
    assert row["verified"] is False and row["evidence"]["inliers"] is None
    assert all(c["inliers"] is None for c in row["candidates"])

    r = runner.invoke(app, ["recognize", str(small_index), str(photos[0])])
    assert r.exit_code == 0 and "Charminar" in r.stdout


def test_cli_evaluate_verify_flags(small_index, small_gallery, tmp_path):
    q = tmp_path / "q"
    for lid in ("charminar", "taj_mahal"):
        (q / lid).mkdir(parents=True)
        for p in sorted((INDIAN / "queries" / lid).glob("*.jpg"))[:3]:
            (q / lid / p.name).symlink_to(p)
    res = {}
    for flag in ("--verify", "--no-verify"):
        r = runner.invoke(app, ["evaluate", str(small_index), str(q), "--json", flag])
        assert r.exit_code == 0, r.output
        res[flag] = json.loads(r.stdout)
    r = runner.invoke(app, ["evaluate", str(small_index), str(q), "--always-verify"])
    assert r.exit_code == 0 and "photos verified" in r.stdout and "100.0%" in r.stdout, r.output
    assert res["--verify"]["n_known"] == res["--no-verify"]["n_known"] == 6
    assert res["--verify"]["top1_accuracy"] >= 0.8


def test_big_galleries_verify_a_bounded_sample(recognizer, monkeypatch):
    """Fitting the verified model asks at most MAX_VERIFIED_QUERIES held-out photos."""
    from landmark_finder.recognition import verified_fit as calibration

    idx = recognizer.index
    monkeypatch.setattr(calibration, "MAX_VERIFIED_QUERIES", 15)
    seen = []
    vm = calibration.fit_verified(
        idx.descriptors,
        idx.row_labels(),
        idx.local,
        idx.verified.config,
        groups=idx.photo_families(),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[-1] == (15, 15) and len(seen) == 15
    assert len(vm.calibrator.weights) == 3 and vm.chance_inliers >= calibration.MIN_CHANCE_INLIERS


@pytest.mark.slow  # a second small index (ORB) built through the CLI
def test_cli_orb_index_verifies_too(small_gallery, tmp_path):
    out = tmp_path / "orb"
    r = runner.invoke(
        app,
        [
            "index",
            "build",
            str(small_gallery),
            "--out",
            str(out),
            "-q",
            "--backbone",
            "efficientnet-lite0",
            "--size",
            "224",
            "--local-features",
            "orb",
            "--max-keypoints",
            "500",
        ],
    )
    assert r.exit_code == 0, r.output
    photo = sorted((INDIAN / "queries" / "charminar").glob("*.jpg"))[0]
    r = runner.invoke(app, ["recognize", str(out), str(photo), "--json", "--always-verify"])
    row = json.loads(r.stdout)
    assert row["verified"] and row["landmark"]["id"] == "charminar"
    r = runner.invoke(
        app,
        [
            "index",
            "build",
            str(small_gallery),
            "--out",
            str(tmp_path / "x"),
            "--local-features",
            "surf",
        ],
    )
    assert r.exit_code == 2 and "unknown local feature method" in r.output


def test_skip_rule_fitted_and_applied(recognizer, always):
    """Verification is skipped only when the global answer is certain, with the same answer."""
    from landmark_finder.verify.matching import SkipRule

    skip = recognizer.index.verified.skip
    assert SkipRule.from_dict(skip.to_dict()) == skip and 0.0 <= skip.cv_verify_rate <= 1.0
    thr = recognizer.index.calibrator.threshold
    assert skip.above is None or skip.above >= thr
    assert skip.below is None or skip.below <= thr
    photos = (
        sorted((INDIAN / "queries" / "taj_mahal").glob("*.jpg"))[:4]
        + sorted((SHARED / "distractors").glob("*.jpg"))[:4]
    )
    for p in photos:
        r, a = recognizer.recognize(p), always.recognize(p)
        assert a.verified and not a.verification_skipped
        assert r.verified != r.verification_skipped
        assert set(r.timings) >= {"decode", "network", "search", "decision"}
        if r.verification_skipped:
            assert "keypoints" not in r.timings and skip.skips(r.confidence, thr)
            assert (r.status, r.landmark) == (a.status, a.landmark)
            if r.status == "recognized":  # the evidence picture still gets its keypoints
                before = (r.status, r.confidence)
                img = load_image(p, max_side=recognizer.load_side)
                ev = recognizer.complete_evidence(img, r).evidence
                assert ev.match is not None and ev.inliers == ev.match.inliers
                assert (ev.inliers, ev.reference_image) == (
                    a.evidence.inliers,
                    a.evidence.reference_image,
                )
                assert (r.status, r.confidence) == before
        else:
            assert r.confidence == pytest.approx(a.confidence)
            assert r.timings["keypoints"] > 0 and r.timings["matching"] > 0


def test_fit_skip_rule_respects_the_budget():
    from landmark_finder.recognition.verified_fit import fit_skip_rule

    rng = np.random.default_rng(0)
    g = rng.random(2000)
    changed = (np.abs(g - 0.5) < 0.2) & (rng.random(2000) < 0.5)
    rule = fit_skip_rule(g, changed, 0.5, max_changed=0.002)
    assert 0.5 <= rule.above < 0.75 and 0.25 < rule.below <= 0.5
    assert int(changed[g >= rule.above].sum()) <= 4 and int(changed[g < rule.below].sum()) <= 4
    assert rule.cv_changed <= 8 and 0 < rule.cv_verify_rate < 1
    assert fit_skip_rule(g, np.ones(2000, bool), 0.5).cv_verify_rate > 0.99
    assert rule.skips(0.99, 0.5) and rule.skips(0.01, 0.5) and not rule.skips(0.5, 0.5)
    assert not rule.skips(0.99, 0.999) and not rule.skips(0.01, 0.0)  # threshold moved past

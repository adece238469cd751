"""`dataset augment` and `dataset split`: marked variants, manifests, seeded leak-free splits."""

from __future__ import annotations

import csv
import io
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import need_shared
from landmark_finder.cli.main import app
from landmark_finder.core.images import load_image
from landmark_finder.dataset.augment import OPERATIONS, apply_operations, augment_collection
from landmark_finder.dataset.scan import augmented_source_stem, is_augmented
from landmark_finder.dataset.split import split_collection

runner = CliRunner()
COUNTS = {"charminar": 9, "hawa_mahal": 6, "india_gate": 3}


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> Path:
    """A flat gallery (DIR/<landmark>/) of symlinks, unbalanced on purpose."""
    root = tmp_path_factory.mktemp("flat") / "gallery"
    for lid, n in COUNTS.items():
        (root / lid).mkdir(parents=True)
        for p in sorted((need_shared() / "gallery" / lid).glob("*.jpg"))[:n]:
            (root / lid / p.name).symlink_to(p)
    return root


@pytest.fixture()
def augmented(flat, tmp_path) -> Path:
    root = tmp_path / "gallery"
    shutil.copytree(flat, root, symlinks=True)
    r = runner.invoke(
        app, ["dataset", "augment", str(root), "--per-landmark", "8", "--seed", "1", "-q"]
    )
    assert r.exit_code == 0, r.output
    return root


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_augment_fills_small_landmarks_with_marked_variants(augmented):
    for lid, n in COUNTS.items():
        files = sorted((augmented / lid).glob("*.jpg"))
        variants = [p for p in files if is_augmented(p)]
        assert len(files) == max(n, 8)
        assert len(variants) == max(0, 8 - n)
        for v in variants:
            assert (augmented / lid / f"{augmented_source_stem(v)}.jpg").exists()
            load_image(v)  # a real JPEG
    rows = _rows(augmented / "augmented.csv")
    assert len(rows) == 2 + 5
    for row in rows:
        assert (augmented / row["path"]).exists() and (augmented / row["source"]).exists()
        assert Path(row["path"]).stem.startswith(Path(row["source"]).stem + "__aug")
        assert row["operations"].count("+") >= 1  # at least two operations
    # india_gate: 5 variants from 3 photos, spread round-robin.
    per_source = Counter(r["source"] for r in rows if r["path"].startswith("india_gate/"))
    assert sorted(per_source.values()) == [1, 2, 2]


def test_augment_is_idempotent_and_never_touches_test_folders(augmented, tmp_path):
    before = sorted(p.name for p in augmented.rglob("*"))
    rep = augment_collection(augmented, 8, seed=1)
    assert rep.written == [] and sorted(p.name for p in augmented.rglob("*")) == before
    raw = tmp_path / "raw"
    (raw / "train").mkdir(parents=True)
    (raw / "test").mkdir()
    shutil.copytree(
        augmented / "india_gate",
        raw / "train" / "india_gate",
        symlinks=True,
        ignore=shutil.ignore_patterns("*__aug*"),
    )
    shutil.copytree(raw / "train" / "india_gate", raw / "test" / "india_gate", symlinks=True)
    rep = augment_collection(raw, 5, seed=0)
    assert len(rep.written) == 2 and all("/train/" in p.as_posix() for p in rep.written)
    assert not any(is_augmented(p) for p in (raw / "test").rglob("*"))
    assert any("only train folders" in w for w in rep.warnings)


def test_augment_operations_and_errors():
    img = Image.new("RGB", (200, 150), (10, 120, 200))
    for op in OPERATIONS:
        out, desc = apply_operations(img, [op], random.Random(0))
        assert out.mode == "RGB" and desc.startswith(op)
    out, _ = apply_operations(img, ["crop"], random.Random(0))
    assert out.width < 200
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_collection(Path("."), 5, operations=("rotate",))
    r = runner.invoke(app, ["dataset", "augment", "/no/such/folder", "-n", "3"])
    assert r.exit_code == 2 and "not a folder" in r.output


def test_split_keeps_variants_and_copies_with_their_source(augmented, tmp_path):
    # Plant a resized copy of a charminar photo under hawa_mahal.
    src = sorted((augmented / "charminar").glob("*.jpg"))[0]
    img = load_image(src)
    buf = io.BytesIO()
    img.resize((img.width // 2, img.height // 2)).save(buf, "JPEG", quality=70)
    (augmented / "hawa_mahal" / "copy.jpg").write_bytes(buf.getvalue())
    rep = split_collection(augmented, tmp_path / "out", (0.6, 0.2, 0.2), seed=3)
    rows = _rows(tmp_path / "out" / "split_manifest.csv")
    split_of = {Path(r["source"]).relative_to(augmented).as_posix(): r["split"] for r in rows}
    for rel, split in split_of.items():
        stem = augmented_source_stem(rel)
        if stem:
            assert split_of[f"{Path(rel).parent.as_posix()}/{stem}.jpg"] == split
    assert split_of["hawa_mahal/copy.jpg"] == split_of[src.relative_to(augmented).as_posix()]
    assert rep.n_grouped_photos >= 2 + 10
    for r in rows:
        assert (tmp_path / "out" / r["path"]).is_file()
        assert r["method"] in ("link", "copy")
        if r["augmented_from"]:
            assert int(r["group_size"]) >= 2
    # Landmarks with enough groups are spread over the three splits (india_gate has only three
    # groups, its three photos each with their variants, so one split gets none of it).
    for lid in ("charminar", "hawa_mahal"):
        assert {r["split"] for r in rows if r["landmark"] == lid} == {"train", "val", "test"}


def test_split_is_deterministic_and_stratified(flat, tmp_path):
    a = split_collection(flat, tmp_path / "a", (0.7, 0.15, 0.15), seed=5)
    b = split_collection(flat, tmp_path / "b", (0.7, 0.15, 0.15), seed=5)
    split_collection(flat, tmp_path / "c", (0.7, 0.15, 0.15), seed=6)

    def assignment(out: Path) -> dict:
        return {r["source"]: r["split"] for r in _rows(out / "split_manifest.csv")}

    assert assignment(tmp_path / "a") == assignment(tmp_path / "b")
    assert assignment(tmp_path / "a") != assignment(tmp_path / "c")
    assert a.counts == b.counts
    # Largest deficit first (ties: train, test, val): 9 photos at 70/15/15 -> 6/1/2, 3 -> 2/0/1.
    assert a.counts["charminar"] == {"train": 6, "val": 1, "test": 2}
    assert a.counts["india_gate"] == {"train": 2, "val": 0, "test": 1}
    d = split_collection(flat, tmp_path / "d", (0.8, 0, 0.2), seed=5)
    assert all(c["val"] == 0 for c in d.counts.values()) and not (tmp_path / "d" / "val").exists()


def test_split_refuses_bad_input(flat, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    r = runner.invoke(app, ["dataset", "split", str(flat), str(tmp_path / "full"), "-q"])
    assert r.exit_code == 2 and "not empty" in r.output
    r = runner.invoke(
        app, ["dataset", "split", str(flat), str(tmp_path / "o"), "--ratios", "0.7", "0.7", "0.7"]
    )
    assert r.exit_code == 2 and "add up to 1" in r.output
    r = runner.invoke(app, ["dataset", "split", str(flat), str(flat / "inside"), "-q"])
    assert r.exit_code == 2 and "outside the collection" in r.output
    assert not (flat / "inside").exists()

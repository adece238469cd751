"""Builds, in a temp dir, the raw layout the Indian-monuments data first came in
(``train/<landmark>/``, ``test/<landmark>/``) from the shared photos, with planted problems.

Photos are symlinks into ../shared (never copied into the repo); planted files are new files
in the temp dir. Landmarks are chosen among those whose shared photos contain no near-duplicate
pair, so every problem ``clean`` may find is one planted here.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from landmark_finder.core.images import load_image

LANDMARKS = ["taj_mahal", "india_gate", "hawa_mahal", "golden_temple"]
N_TRAIN, N_TEST = 8, 4


def _jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def build_raw_layout(indian: Path, root: Path) -> dict[str, object]:
    """Make ``root`` and return what was planted: {"offenders": {rel: reason}, "pairs": [(orig,
    copy)]}."""
    for lid in LANDMARKS:
        for split, src, n in (("train", "gallery", N_TRAIN), ("test", "queries", N_TEST)):
            (root / split / lid).mkdir(parents=True)
            for p in sorted((indian / src / lid).glob("*.jpg"))[:n]:
                (root / split / lid / p.name).symlink_to(p)
    off: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    # Hidden / OS files.
    (root / "train/taj_mahal/.DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 64)
    off["train/taj_mahal/.DS_Store"] = "hidden"
    first_test = sorted((root / "test/india_gate").glob("*.jpg"))[0]
    (root / f"test/india_gate/._{first_test.name}").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)
    off[f"test/india_gate/._{first_test.name}"] = "hidden"
    # A text file named .jpg.
    (root / "train/hawa_mahal/notes.jpg").write_text("shot list: front gate, night view\n")
    off["train/hawa_mahal/notes.jpg"] = "not-an-image"
    # A truncated JPEG (of a photo that is not in the subset).
    donor = sorted((indian / "gallery/golden_temple").glob("*.jpg"))[-1].read_bytes()
    (root / "train/golden_temple/truncated.jpg").write_bytes(donor[: len(donor) * 3 // 5])
    off["train/golden_temple/truncated.jpg"] = "broken"
    # A resized copy filed under another landmark.
    src = sorted((root / "train/taj_mahal").glob("*.jpg"))[1]
    img = load_image(src)
    (root / "train/india_gate/from_taj.jpg").write_bytes(
        _jpeg(img.resize((img.width * 3 // 5, img.height * 3 // 5)))
    )
    off["train/india_gate/from_taj.jpg"] = "near-duplicate"
    pairs.append((src.relative_to(root).as_posix(), "train/india_gate/from_taj.jpg"))
    # A resized, recompressed copy of a train photo in the test folder.
    src = sorted((root / "train/hawa_mahal").glob("*.jpg"))[2]
    img = load_image(src)
    (root / "test/hawa_mahal/smaller.jpg").write_bytes(
        _jpeg(img.resize((img.width // 2, img.height // 2)), 60)
    )
    off["test/hawa_mahal/smaller.jpg"] = "near-duplicate"
    pairs.append((src.relative_to(root).as_posix(), "test/hawa_mahal/smaller.jpg"))
    # A slightly cropped copy of a train photo in the test folder.
    src = sorted((root / "train/golden_temple").glob("*.jpg"))[3]
    img = load_image(src)
    w, h = img.size
    (root / "test/golden_temple/cropped.jpg").write_bytes(
        _jpeg(img.crop((w // 20, h // 25, w - w // 25, h - h // 20)), 90)
    )
    off["test/golden_temple/cropped.jpg"] = "near-duplicate"
    pairs.append((src.relative_to(root).as_posix(), "test/golden_temple/cropped.jpg"))
    # An exact copy (same bytes) of a test photo in the train folder; the test one sorts first.
    src = sorted((root / "test/taj_mahal").glob("*.jpg"))[0]
    (root / "train/taj_mahal/copy.jpg").write_bytes(src.read_bytes())
    off["train/taj_mahal/copy.jpg"] = "duplicate"
    pairs.append((src.relative_to(root).as_posix(), "train/taj_mahal/copy.jpg"))
    return {"offenders": off, "pairs": pairs}

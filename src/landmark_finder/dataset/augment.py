"""Filling small landmarks with augmented variants that can never pass for independent photos.

Every variant is written next to its source as ``<source stem>__aug<k>.jpg`` and recorded in
``DIR/augmented.csv`` (variant, source, operations, seed). The name marker is what ``split``
(and anything else calling :func:`landmark_finder.dataset.scan.is_augmented`) uses to keep a
variant with its source, so the file stays self-describing even if the manifest is lost.

Operations (each variant applies two or more, drawn from a seeded generator): random crop
(60-90 % of the area), horizontal flip, colour (brightness / contrast / saturation 0.7-1.3),
perspective (corners moved inward by up to 8 %: a different vantage point, no black borders),
and Gaussian blur. In a raw layout with split folders only ``train`` folders are filled: test
photos must stay real.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter

from landmark_finder.core.images import ImageLoadError, load_image
from landmark_finder.core.progress import Progress, no_progress
from landmark_finder.dataset.manifest import append_csv_atomic, write_bytes_atomic
from landmark_finder.dataset.scan import (
    AUG_MARKER,
    DEFAULT_MIN_SIDE,
    augmented_source_stem,
    examine_all,
    scan_tree,
)
from landmark_finder.i18n import N_

MANIFEST_NAME = "augmented.csv"
MANIFEST_FIELDS = ("path", "source", "operations", "seed", "created")
OPERATIONS = ("crop", "flip", "colour", "perspective", "blur")
#: Folders of a raw layout that may receive variants (never val/test).
TRAIN_FOLDERS = frozenset({None, "train", "training", "gallery"})


@dataclass
class AugmentReport:
    written: list[Path] = field(default_factory=list)
    per_landmark: dict[str, tuple[int, int]] = field(
        default_factory=dict
    )  # landmark -> (before, after)
    warnings: list[str] = field(default_factory=list)


def _perspective(img: Image.Image, rng: random.Random, amount: float = 0.08) -> Image.Image:
    w, h = img.size

    def j(v: float) -> float:
        return rng.uniform(0, amount) * v

    # QUAD maps this source quadrilateral (UL, LL, LR, UR) onto the whole output rectangle.
    quad = (j(w), j(h), j(w), h - j(h), w - j(w), h - j(h), w - j(w), j(h))
    return img.transform(img.size, Image.Transform.QUAD, quad, Image.Resampling.BICUBIC)


def apply_operations(
    img: Image.Image, ops: list[str], rng: random.Random
) -> tuple[Image.Image, str]:
    """Apply ``ops`` in a fixed order with random strengths; returns the image and a description."""
    done = []
    if "crop" in ops:
        area = rng.uniform(0.6, 0.9)
        s = area**0.5
        w, h = img.size
        cw, ch = max(1, round(w * s)), max(1, round(h * s))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img = img.crop((x, y, x + cw, y + ch))
        done.append(f"crop({area:.2f})")
    if "perspective" in ops:
        img = _perspective(img, rng)
        done.append("perspective")
    if "flip" in ops:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        done.append("flip")
    if "colour" in ops:
        b, c, s = (rng.uniform(0.7, 1.3) for _ in range(3))
        img = ImageEnhance.Color(
            ImageEnhance.Contrast(ImageEnhance.Brightness(img).enhance(b)).enhance(c)
        ).enhance(s)
        done.append(f"colour(b{b:.2f},c{c:.2f},s{s:.2f})")
    if "blur" in ops:
        radius = rng.uniform(0.5, 1.5) * max(img.size) / 512
        img = img.filter(ImageFilter.GaussianBlur(radius))
        done.append(f"blur({radius:.1f})")
    return img, "+".join(done)


def _next_index(folder: Path, stem: str) -> int:
    ks = [
        int(p.stem.rsplit(AUG_MARKER, 1)[1])
        for p in folder.glob(f"{stem}{AUG_MARKER}*")
        if augmented_source_stem(p) == stem and p.stem.rsplit(AUG_MARKER, 1)[1].isdigit()
    ]
    return max(ks, default=0) + 1


def augment_collection(
    root: Path,
    per_landmark: int,
    seed: int = 0,
    operations: tuple[str, ...] = OPERATIONS,
    min_side: int = DEFAULT_MIN_SIDE,
    quality: int = 92,
    progress: Progress = no_progress,
) -> AugmentReport:
    """Bring every landmark (train folder) with fewer than ``per_landmark`` photos up to it."""
    root = Path(os.path.abspath(root))
    bad = [o for o in operations if o not in OPERATIONS]
    if bad or not operations:
        raise ValueError(
            f"unknown augmentation {', '.join(bad) or '(none)'}; choose from "
            f"{', '.join(OPERATIONS)}"
        )
    if per_landmark < 1:
        raise ValueError("--per-landmark must be at least 1")
    entries = scan_tree(root)
    photos = [
        p
        for p in examine_all(entries, min_side, progress)
        if p.status == "ok" and p.entry.kind == "image"
    ]
    report = AugmentReport()
    cells: dict[tuple[str | None, str], list] = {}
    for e in entries:  # every landmark folder, even one whose photos are all unreadable
        if e.kind == "image" and e.folder_split in TRAIN_FOLDERS:
            cells.setdefault((e.folder_split, e.landmark), [])
    for p in photos:
        if p.entry.folder_split in TRAIN_FOLDERS:
            cells[(p.entry.folder_split, p.landmark)].append(p)
    if any(
        split not in TRAIN_FOLDERS
        for split in {e.folder_split for e in entries if e.kind == "image"}
    ):
        report.warnings.append(
            "split folders found: only train folders were filled (val/test stay real photos)"
        )
    jobs = []
    for (split, landmark), ps in sorted(cells.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        label = f"{split}/{landmark}" if split else landmark
        need = per_landmark - len(ps)
        report.per_landmark[label] = (len(ps), max(len(ps), per_landmark))
        if need <= 0:
            continue
        sources = sorted(
            (p for p in ps if augmented_source_stem(p.path) is None), key=lambda p: p.entry.rel
        )
        if not sources:
            report.warnings.append(f"{label}: no readable original photo to augment")
            report.per_landmark[label] = (len(ps), len(ps))
            continue
        rng = random.Random(
            int.from_bytes(hashlib.sha256(f"{seed}:{label}".encode()).digest()[:8], "big")
        )
        rng.shuffle(sources)
        if need > 5 * len(sources):
            report.warnings.append(
                f"{label}: {need} variants from only {len(sources)} photos "
                f"(~{need / len(sources):.0f} each): collect more real photos"
            )
        for k in range(need):
            jobs.append((sources[k % len(sources)], rng.randrange(1 << 62)))
    rows = []
    now = datetime.now(UTC).isoformat(timespec="seconds")
    progress(0, len(jobs), N_("writing variants"))
    try:
        for n, (src, job_seed) in enumerate(jobs, 1):
            rng = random.Random(job_seed)
            ops = [o for o in operations if rng.random() < 0.5]
            while len(ops) < min(2, len(operations)):
                extra = rng.choice(operations)
                if extra not in ops:
                    ops.append(extra)
            try:
                img = load_image(src.path)
            except ImageLoadError as e:
                report.warnings.append(str(e))
                continue
            out_img, desc = apply_operations(img, ops, rng)
            dest = src.path.with_name(
                f"{src.path.stem}{AUG_MARKER}{_next_index(src.path.parent, src.path.stem)}.jpg"
            )
            row = {
                "path": dest.relative_to(root).as_posix(),
                "source": src.entry.rel,
                "operations": desc,
                "seed": job_seed,
                "created": now,
            }
            buf = io.BytesIO()
            out_img.save(buf, "JPEG", quality=quality)
            write_bytes_atomic(dest, buf.getvalue())
            report.written.append(dest)
            rows.append(row)
            progress(n, len(jobs), N_("writing variants"))
    finally:
        if rows:  # also after an interruption: every variant on disk is in the manifest
            append_csv_atomic(root / MANIFEST_NAME, MANIFEST_FIELDS, rows)
    return report

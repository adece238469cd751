"""Synthetic test photos with a known answer for *where*: a landmark photo pasted into another.

Locating a landmark needs boxes to score against, and no public landmark set here has them.
Pasting a whole landmark photo at a random position and scale into an everyday photo gives a
ground-truth box for free (the pasted rectangle), and real pixels on both sides of it. The
tests and ``bench/locate.py`` use the same generator, so their figures mean the same thing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image


@dataclass
class Composite:
    image: Image.Image  # RGB, the background's size
    box: tuple[int, int, int, int]  # pasted region (x0, y0, x1, y1), x1/y1 exclusive
    landmark_id: str


def paste(
    landmark: Image.Image,
    background: Image.Image,
    rng: random.Random,
    landmark_id: str = "",
    width_fraction: tuple[float, float] = (0.35, 0.70),
) -> Composite:
    """Paste ``landmark`` (aspect kept) into ``background`` at a random place and size.

    The pasted width is a random fraction ``width_fraction`` of the background's width, shrunk
    if needed so the photo also fits the background's height.
    """
    bg = background.convert("RGB").copy()
    lm = landmark.convert("RGB")
    bw, bh = bg.size
    frac = rng.uniform(*width_fraction)
    w = max(8, round(bw * frac))
    h = max(8, round(w * lm.height / lm.width))
    if h > bh * 0.95:  # tall photo in a short background: fit the height instead
        h = max(8, round(bh * rng.uniform(0.6, 0.95)))
        w = max(8, round(h * lm.width / lm.height))
    x0 = rng.randint(0, max(0, bw - w))
    y0 = rng.randint(0, max(0, bh - h))
    bg.paste(lm.resize((w, h), Image.Resampling.LANCZOS), (x0, y0))
    return Composite(bg, (x0, y0, x0 + w, y0 + h), landmark_id)


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class PairComposite:
    image: Image.Image
    boxes: list[tuple[int, int, int, int]]  # left landmark's box, then the right one's
    landmark_ids: list[str]


def paste_pair(
    left: Image.Image,
    right: Image.Image,
    background: Image.Image,
    rng: random.Random,
    ids: tuple[str, str] = ("", ""),
    width_fraction: tuple[float, float] = (0.35, 0.48),
) -> PairComposite:
    """Two landmark photos side by side in ``background``: ``left`` in its left half, ``right``
    in its right half, each a random ``width_fraction`` of its width, never overlapping."""
    bg = background.convert("RGB").copy()
    bw, bh = bg.size
    boxes = []
    for i, lm in enumerate((left.convert("RGB"), right.convert("RGB"))):
        w = max(8, round(bw * rng.uniform(*width_fraction)))
        h = max(8, round(w * lm.height / lm.width))
        if h > bh * 0.95:
            h = max(8, round(bh * rng.uniform(0.6, 0.95)))
            w = max(8, round(h * lm.width / lm.height))
        half = bw // 2
        lo, hi = (0, max(0, half - w)) if i == 0 else (half, max(half, bw - w))
        x0, y0 = rng.randint(lo, hi), rng.randint(0, max(0, bh - h))
        bg.paste(lm.resize((w, h), Image.Resampling.LANCZOS), (x0, y0))
        boxes.append((x0, y0, x0 + w, y0 + h))
    return PairComposite(bg, boxes, list(ids))

"""Perceptual hashes that survive resizing, recompression and light cropping.

Each photo gets a small stack of 128-bit codes: pHash + dHash (from the ``imagehash`` library)
of the whole photo and of 18 crops of it (92 % and 84 % of each side, at 9 anchor positions).
A resized or recompressed copy lands within a few bits of the original's *whole-photo* code; a
cropped copy lands close to one of the original's *crop* codes. Comparing every whole-photo
code with every crop code is a Hamming range search, done by faiss (already a dependency of the
index) so it stays fast for tens of thousands of photos.

Distances between different photos of the same landmark can be small too (same viewpoint, same
postcard angle), so hash hits on crops are only *candidates*; ``match.py`` checks them pixel by
pixel. Measured on the 2,004 Indian-monuments photos (see the README): no two different photos
are within ``EXACT_RADIUS`` on whole-photo codes, while every resized (down to 25 %) or
recompressed (JPEG quality 30) copy is.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import imagehash
import numpy as np
from PIL import Image

#: Side fractions and anchors (0 = left/top, 1 = right/bottom) of the crops that are hashed.
CROP_SCALES = (0.92, 0.84)
CROP_ANCHORS = (0.0, 0.5, 1.0)
N_CODES = 1 + len(CROP_SCALES) * len(CROP_ANCHORS) ** 2
CODE_BYTES = 16  # 64-bit pHash + 64-bit dHash
#: Whole-photo codes this close are the same photo without further checks (resize/recompress
#: copies measured at <= 5 bits; the closest pair of *different* photos at 18 bits).
EXACT_RADIUS = 10
#: Whole-vs-crop codes this close are candidates for the pixel check (crops up to 12 % of a side
#: measured at <= 27 bits).
CANDIDATE_RADIUS = 30


def _code(img: Image.Image) -> np.ndarray:
    g = img.convert("L")
    bits = np.concatenate([imagehash.phash(g).hash.ravel(), imagehash.dhash(g).hash.ravel()])
    return np.packbits(bits)


def _crops(img: Image.Image) -> list[Image.Image]:
    w, h = img.size
    out = [img]
    for s in CROP_SCALES:
        cw, ch = w * s, h * s
        for ay in CROP_ANCHORS:
            for ax in CROP_ANCHORS:
                x, y = (w - cw) * ax, (h - ch) * ay
                out.append(img.crop((round(x), round(y), round(x + cw), round(y + ch))))
    return out


#: Photos are reduced to this long side before hashing: hashes look at 32x32 px anyway, and
#: resampling 19 crops of a small image is 4x cheaper than of the 256 px thumbnail.
BASE_SIDE = 128


def perceptual_codes(img: Image.Image) -> np.ndarray:
    """(N_CODES, 16) uint8: row 0 is the whole photo, the rest are its crops."""
    g = img.convert("L")
    s = BASE_SIDE / max(g.size)
    if s < 1:
        g = g.resize(
            (max(1, round(g.width * s)), max(1, round(g.height * s))), Image.Resampling.BOX
        )
    return np.stack([_code(c) for c in _crops(g)])


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    """Bits that differ between two packed codes."""
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


@dataclass(frozen=True)
class HashPair:
    """Two photos (by index) whose codes are close; ``whole`` is the whole-vs-whole distance."""

    i: int
    j: int
    whole: int
    best: int  # smallest whole-vs-crop (or whole-vs-whole) distance

    @property
    def certain(self) -> bool:
        return self.whole <= EXACT_RADIUS


def close_pairs(codes: list[np.ndarray], radius: int = CANDIDATE_RADIUS) -> list[HashPair]:
    """Pairs (i < j) where one photo's whole code is within ``radius`` of any code of the other."""
    n = len(codes)
    if n < 2:
        return []
    all_codes = np.ascontiguousarray(np.concatenate(codes).astype(np.uint8))
    owner = np.repeat(np.arange(n), [len(c) for c in codes])
    whole = np.ascontiguousarray(np.stack([c[0] for c in codes]).astype(np.uint8))
    index = faiss.IndexBinaryFlat(CODE_BYTES * 8)
    index.add(all_codes)
    lims, dist, ids = index.range_search(whole, radius + 1)  # faiss keeps distances < radius
    best: dict[tuple[int, int], int] = {}
    for q in range(n):
        for d, k in zip(dist[lims[q] : lims[q + 1]], ids[lims[q] : lims[q + 1]], strict=False):
            o = int(owner[k])
            if o == q:
                continue
            key = (min(q, o), max(q, o))
            if d < best.get(key, 1 << 30):
                best[key] = int(d)
    return [HashPair(i, j, hamming(whole[i], whole[j]), d) for (i, j), d in sorted(best.items())]

"""Where a verified landmark is in the photo: its outline, from the verification's own geometry.

Verification fits a homography between the photo and a reference photo of the landmark
(:mod:`landmark_finder.verify.matching`); its inliers are the same stones seen in both. Mapping
the reference's landmark region through that homography says where the landmark is in the
photo, with no extra network pass:

* ``frame``: the reference photo's whole frame. A reference photo is a photo *of the
  landmark*, so its frame is the landmark with its setting: on composites it matched the
  pasted photo best (see ``bench/locate_results.md``).
* ``hull``: the bounding rectangle of the reference's inliers, projected. Used when the
  projected frame is implausible (not convex, folded, or far larger than the photo: a wide
  reference matched on a detail), since the inliers themselves always lie on the landmark.

The homography is refitted on the inliers alone by least squares (MAGSAC's model is fitted on
a minimal sample): that uses every inlier and takes well under a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from landmark_finder.verify.matching import PairMatch

MIN_INLIERS = 8  # fewer: no outline (a homography needs 4; chance reaches ~10, see matching)
MAX_AREA = 4.0  # a projected frame larger than this many photos is not believed
#: a projected frame whose box is this many times the inliers' box is an extrapolation too far
#: from the matched points (the homography of a detail)
MAX_FRAME_OVER_HULL = 8.0


@dataclass
class Outline:
    """A landmark's outline in photo pixels: a 4-point polygon (clockwise from the top left
    corner of the reference) and its bounding box, clipped to the photo (x1, y1 exclusive)."""

    polygon: np.ndarray  # (4, 2) float, corners clamped to the photo
    box: tuple[int, int, int, int]
    source: str  # "frame" | "hull"
    inliers: int

    def polygon_list(self) -> list[list[float]]:
        return [[round(float(x), 1), round(float(y), 1)] for x, y in self.polygon]


def _box(poly: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    x0, y0 = np.floor(poly.min(0)).astype(int)
    x1, y1 = np.ceil(poly.max(0)).astype(int)
    b = (max(0, int(x0)), max(0, int(y0)), min(size[0], int(x1)), min(size[1], int(y1)))
    return b if b[2] - b[0] >= 2 and b[3] - b[1] >= 2 else None


def _plausible(poly: np.ndarray, size: tuple[int, int]) -> bool:
    import cv2

    p = poly.astype(np.float32).reshape(-1, 1, 2)
    if not np.isfinite(poly).all() or not cv2.isContourConvex(p):
        return False
    area = abs(float(cv2.contourArea(p)))
    return 0 < area <= MAX_AREA * size[0] * size[1]


def outline(
    match: PairMatch, image_size: tuple[int, int], ref_size: tuple[float, float] | None
) -> Outline | None:
    """The matched reference's landmark region mapped into the photo, or None without enough
    inliers or a usable homography. ``ref_size``: the reference photo's (w, h) in the pixels
    its keypoints are in; None: only the inliers' hull is projected."""
    import cv2

    if match.inliers < MIN_INLIERS or len(match.ref_xy) < 4:
        return None
    r, q = match.ref_xy.astype(np.float64), match.query_xy.astype(np.float64)
    try:
        h, _ = cv2.findHomography(r, q, 0)
    except cv2.error:
        h = None
    if h is None or not np.isfinite(h).all():
        return None

    def project(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        corners = np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], np.float64)
        return cv2.perspectiveTransform(corners, h)[0]

    hull = project(*r.min(0), *r.max(0))
    if not _plausible(hull, image_size):
        return None
    if ref_size is not None:
        frame = project(0.0, 0.0, float(ref_size[0]), float(ref_size[1]))
        fb = _box(frame, image_size)
        hb = _box(hull, image_size)
        if _plausible(frame, image_size) and fb is not None and hb is not None:
            fa = (fb[2] - fb[0]) * (fb[3] - fb[1])
            if fa <= MAX_FRAME_OVER_HULL * (hb[2] - hb[0]) * (hb[3] - hb[1]):
                return Outline(_clamp(frame, image_size), fb, "frame", match.inliers)
    hb = _box(hull, image_size)
    return None if hb is None else Outline(_clamp(hull, image_size), hb, "hull", match.inliers)


def _clamp(poly: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Corners moved onto the photo's edges where they fall outside it: an outline is drawn
    over the photo, as landmark services report theirs."""
    return np.clip(poly, 0.0, np.array(size, np.float64))


@lru_cache(maxsize=4096)
def photo_size(path: str, side: int) -> tuple[float, float] | None:
    """(w, h) of a photo as ``load_image(path, max_side=side)`` returns it, read from its
    header (EXIF rotation applied); None when the file cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(Path(path)) as im:
            w, h = im.size
            if im.getexif().get(0x0112) in (5, 6, 7, 8):
                w, h = h, w
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    s = min(1.0, side / max(w, h, 1))
    return (w * s, h * s)

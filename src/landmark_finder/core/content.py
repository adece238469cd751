"""Content checks before recognition: pictures that cannot show a landmark get "unknown" at once.

A descriptor network maps *any* input to some point of descriptor space, and a small gallery's
calibrator has never seen a blank or a noise picture: a 5-landmark index called black, white,
grey, red, sky-blue, noise and gradient images landmarks with confidence 0.57–0.88. These checks
answer them "unknown" with a reason, before the network runs.

The thresholds were set on the 2,154 real photos of ``../shared/landmarks`` (Indian-monuments
gallery, queries, unseen, and the everyday-photo distractors) measured on the photo reduced to
128 px, with a wide margin below the least extreme real photo:

=================  =================================================  ==========  ==============
check              measure                                            real: min   flagged below
=================  =================================================  ==========  ==============
tiny               shorter side in pixels                             75 px       32 px
blank              largest per-channel standard deviation (0–255)     17.3        4
noise              correlation of neighbouring pixels (luminance)     0.56        0.35
featureless        mean absolute difference of neighbouring pixels    2.16        1.0
=================  =================================================  ==========  ==============

"featureless" catches smooth gradients (a full-range gradient measures 0.33); "noise" catches
pixel noise (uniform noise: 0.15). A fully transparent picture (the loader composites alpha over
white, so it would look blank) is named as such.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from landmark_finder.core.images import TRANSPARENT

MIN_SIDE = 32
MAX_FLAT_STD = 4.0
MIN_NEIGHBOUR_CORRELATION = 0.35
MIN_DETAIL = 1.0
_PROBE_SIDE = 128


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    d = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / d if d > 0 else 1.0


def content_problem(image: Image.Image) -> str | None:
    """Why ``image`` (RGB, as from ``load_image``) cannot show a landmark, or None if it may."""
    w, h = image.size
    if image.info.get(TRANSPARENT):
        return "fully transparent image: nothing to recognize"
    if min(w, h) < MIN_SIDE:
        return f"image too small to recognize ({w}x{h}; needs at least {MIN_SIDE} px a side)"
    probe = image.convert("RGB")
    probe.thumbnail((_PROBE_SIDE, _PROBE_SIDE))
    rgb = np.asarray(probe, np.float32)
    if float(rgb.reshape(-1, 3).std(axis=0).max()) < MAX_FLAT_STD:
        return "blank image: a single flat colour"
    grey = rgb.mean(axis=2)
    dx, dy = np.diff(grey, axis=1), np.diff(grey, axis=0)
    corr = min(
        _correlation(grey[:, 1:].ravel(), grey[:, :-1].ravel()) if grey.shape[1] > 1 else 1.0,
        _correlation(grey[1:, :].ravel(), grey[:-1, :].ravel()) if grey.shape[0] > 1 else 1.0,
    )
    if corr < MIN_NEIGHBOUR_CORRELATION:
        return "image is noise: neighbouring pixels are unrelated"
    detail = (float(np.abs(dx).mean()) + float(np.abs(dy).mean())) / 2 if dx.size and dy.size else 0
    if detail < MIN_DETAIL:
        return "featureless image: a smooth gradient with no detail"
    return None

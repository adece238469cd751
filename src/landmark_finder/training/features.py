"""Frozen-backbone descriptors of training views, cached on disk.

The fast (CPU) mode never back-propagates through the backbone, so each photo's views need the
network only once, ever: view 0 is the photo itself, views 1.. are seeded random augmentations
(:func:`landmark_finder.training.data.view_rng`), described with the same ONNX graph and
preprocessing as indexing (backbone → GeM → L2). Training the head then takes seconds per
epoch instead of minutes, and later runs — another loss, another landmark subset, a resumed
run — reuse the cache.

Layout: ``CACHE/<settings key>/<sha[:2]>/<sha256 of the photo>.npy`` holding ``(views, D)``
float32; the key covers backbone, weights, preprocessing, augmentation and seed. Each file is
written atomically, so an interrupted run loses at most the photo it was describing; asking
for more views later computes only the missing ones.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from landmark_finder.core.atomic import write_bytes_atomic
from landmark_finder.core.descriptors import Extractor, cache_dir
from landmark_finder.core.images import ImageLoadError, load_image
from landmark_finder.core.progress import Progress
from landmark_finder.i18n import N_
from landmark_finder.training.data import AugmentConfig, LabelledPhoto, augment, view_rng


def default_cache() -> Path:
    return cache_dir() / "train-features"


def settings_key(extractor: Extractor, aug: AugmentConfig, seed: int) -> str:
    pre = extractor.preprocessing
    text = (
        f"{extractor.backbone_name}|{extractor.weights_hash}|{pre.size}|{pre.gem_p}|"
        f"{aug.key()}|{seed}|v1"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr)
    write_bytes_atomic(path, buf.getvalue())


def _load(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None  # absent, or a torn file from a crash: recompute


def photo_views(
    extractor: Extractor,
    photo: LabelledPhoto,
    n_views: int,
    aug: AugmentConfig,
    seed: int,
    cache: Path | None,
) -> np.ndarray:
    """``(n_views, D)`` descriptors of one photo's views, from the cache where possible."""
    path = None
    have = np.zeros((0, extractor.dim), np.float32)
    if cache is not None:
        path = cache / settings_key(extractor, aug, seed) / photo.sha256[:2] / f"{photo.sha256}.npy"
        got = _load(path)
        if got is not None and got.ndim == 2 and got.shape[1] == extractor.dim:
            have = got.astype(np.float32)
    if len(have) >= n_views:
        return have[:n_views]
    img = load_image(photo.path)
    new = []
    for v in range(len(have), n_views):
        view = img if v == 0 else augment(img, view_rng(seed, photo.sha256, v), aug)
        new.append(extractor.describe(view))
    out = np.concatenate([have, np.stack(new)]).astype(np.float32)
    if path is not None:
        _save_atomic(path, out)
    return out


def describe_views(
    extractor: Extractor,
    photos: list[LabelledPhoto],
    n_views: int,
    aug: AugmentConfig = AugmentConfig(),
    seed: int = 0,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, list[int], list[str]]:
    """Views of every photo: ``(features (N_ok, n_views, D), kept row indices, errors)``.

    Unreadable photos are skipped with a one-line error each, never a crash.
    """
    feats, kept, errors = [], [], []
    for i, p in enumerate(photos):
        try:
            feats.append(photo_views(extractor, p, n_views, aug, seed, cache))
            kept.append(i)
        except ImageLoadError as e:
            errors.append(str(e))
        if progress:
            progress(i + 1, len(photos), N_("describing training views"))
    arr = np.stack(feats) if feats else np.zeros((0, n_views, extractor.dim), np.float32)
    return arr, kept, errors

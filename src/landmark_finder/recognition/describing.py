"""Photos → descriptors (and keypoints) for the index: one call whatever runs the work.

Chooses between this process (PyTorch runtime, nothing to hand to workers), worker processes
(:mod:`~.runner`) and Ray (:mod:`~.ray_runner`); the result is the same either way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from landmark_finder.core.descriptors import Extractor
from landmark_finder.core.images import ImageLoadError, load_image
from landmark_finder.core.progress import Progress
from landmark_finder.core.views import MIN_CROP_FRACTION
from landmark_finder.recognition.runner import DescribeSpec, PhotoResult, describe_photos
from landmark_finder.verify.keypoints import LocalConfig, LocalFeatures, extract

log = logging.getLogger(__name__)


def describe_paths(
    extractor: Extractor,
    paths: list[Path],
    what: str,
    skipped: list[str],
    progress: Progress | None,
    local: LocalConfig | None = None,
    workers: int | None = None,
    ray: str | None = None,
) -> tuple[list[Path], np.ndarray, list[LocalFeatures]]:
    """Global descriptors (N, V, D) of every view of each photo (and, with ``local``, its
    keypoints), decoding it once, on ``workers`` processes (or on Ray: ``ray`` "" starts a local
    instance, else a cluster address); unreadable photos are skipped, one line each in
    ``skipped``."""
    ok, vecs, feats = [], [], []
    if extractor.onnx_path is None:  # PyTorch runtime (no ONNX export): one process
        results = _describe_serial(extractor, paths, local, what, progress)
    elif ray is not None:
        from landmark_finder.recognition.ray_runner import describe_photos_ray

        spec = DescribeSpec.of(extractor, local)
        results = describe_photos_ray(paths, spec, ray or None, progress, what + " on Ray")
    else:
        spec = DescribeSpec.of(extractor, local)
        results = describe_photos(paths, spec, workers, progress, what)
    for r in results:
        if r.error is not None:
            skipped.append(r.error)
            continue
        ok.append(Path(r.path))
        vecs.append(np.asarray(r.descriptor, np.float32).reshape(-1, extractor.dim))
        if local is not None:
            feats.append(r.local)
    n_views = extractor.preprocessing.n_views
    arr = np.stack(vecs) if vecs else np.zeros((0, n_views, extractor.dim), np.float32)
    return ok, arr, feats


def _describe_serial(extractor, paths, local, what, progress):
    """The PyTorch runtime (no ONNX export to hand to workers): every photo in this process."""
    pre = extractor.preprocessing
    side = int(pre.size * max(pre.scales))
    if pre.n_views > 1:
        side = int(round(side / MIN_CROP_FRACTION))
    if local is not None:
        side = max(side, local.side)
    for i, p in enumerate(paths):
        try:
            img = load_image(p, max_side=side)
            vecs = extractor.describe_views(img) if pre.n_views > 1 else extractor.describe(img)
            feats = extract(img, local) if local is not None else None
        except ImageLoadError as e:
            yield PhotoResult(i, Path(p), error=str(e))
        except Exception as e:  # one bad photo must not cost the whole build
            log.debug("describing %s failed", p, exc_info=True)
            reason = " ".join(f"{type(e).__name__}: {e}".split())
            yield PhotoResult(i, Path(p), error=f"{p}: cannot describe ({reason}); skipped")
        else:
            yield PhotoResult(i, Path(p), vecs, feats)
        if progress:
            progress(i + 1, len(paths), what)

"""Describe many photos on every core: decode → descriptor (ONNX Runtime, batched) → keypoints.

One Python process runs one photo at a time on one core's worth of work (JPEG decoding and SIFT
are single-threaded), so building an index of thousands of photos left the machine idle. Here
worker processes each hold their own single-threaded ONNX Runtime session and do the whole
per-photo pipeline; the parent only collects results, in input order.

The result does not depend on the number of workers: photos are grouped into fixed chunks (the
same whatever ``workers`` is) and each chunk is computed by the same code with a
single-threaded session, in-process when ``workers == 1``.

>>> spec = DescribeSpec.of(extractor, LocalConfig())
>>> for r in describe_photos(paths, spec, workers=4, progress=cb):
...     r.descriptor, r.local, r.error       # one per photo, in order

Used by index building and by anything else that needs many photos described (recognising
a photo library); workers import neither PyTorch nor the index code.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landmark_finder.core.cores import usable_cores
from landmark_finder.core.descriptors import Extractor, Preprocessing
from landmark_finder.i18n import N_
from landmark_finder.verify.keypoints import LocalConfig, LocalFeatures

#: Photos per task: big enough to batch same-shaped photos, small enough to balance the load.
CHUNK = 8


@dataclass(frozen=True)
class DescribeSpec:
    """What a worker needs to rebuild the extractor from the ONNX cache (picklable)."""

    backbone: str
    weights_hash: str
    preprocessing: Preprocessing
    onnx_path: str
    dim: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    size_multiple: int
    local: LocalConfig | None = None
    descriptors: bool = True

    @classmethod
    def of(
        cls, extractor: Extractor, local: LocalConfig | None = None, descriptors: bool = True
    ) -> DescribeSpec:
        if extractor.onnx_path is None:
            raise ValueError("parallel describing needs the ONNX runtime (this model has none)")
        return cls(
            extractor.backbone_name,
            extractor.weights_hash,
            extractor.preprocessing,
            extractor.onnx_path,
            extractor.dim,
            tuple(float(v) for v in np.ravel(extractor.mean)),
            tuple(float(v) for v in np.ravel(extractor.std)),
            extractor.size_multiple,
            local,
            descriptors,
        )

    @property
    def load_side(self) -> int:
        """Long side photos are decoded at: enough for the descriptor and the keypoints."""
        from landmark_finder.core.views import MIN_CROP_FRACTION

        pre = self.preprocessing
        side = int(pre.size * max(pre.scales))
        if pre.n_views > 1:  # the smallest crop must still be seen at the network's size
            side = int(round(side / MIN_CROP_FRACTION))
        return max(side, self.local.side) if self.local is not None else side

    def extractor(self) -> Extractor:
        from landmark_finder.core.descriptors import _onnx_runner

        return Extractor(
            self.backbone,
            self.weights_hash,
            self.dim,
            self.preprocessing,
            np.asarray(self.mean, np.float32).reshape(3, 1, 1),
            np.asarray(self.std, np.float32).reshape(3, 1, 1),
            self.size_multiple,
            _onnx_runner(Path(self.onnx_path), 1),
            "onnx",
            self.onnx_path,
        )


@dataclass
class PhotoResult:
    """One photo's outcome: ``error`` (one line) when it could not be read or described."""

    index: int
    path: Path
    descriptor: np.ndarray | None = None
    local: LocalFeatures | None = None
    error: str | None = None
    size: tuple[int, int] | None = None  # decoded (width, height), after EXIF rotation


#: Every core this process may use.
default_workers = usable_cores


_worker: tuple[DescribeSpec, Extractor | None] | None = None


def _state(spec: DescribeSpec) -> tuple[DescribeSpec, Extractor | None]:
    return spec, spec.extractor() if spec.descriptors else None


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _keep_freed_memory() -> None:
    """Let this process reuse the memory of one photo for the next.

    By default glibc serves every allocation over 128 KB (a decoded photo, a network input,
    the SIFT scale space) with a fresh ``mmap`` and unmaps it when freed, so each photo paid
    for its pages again: 2.0 million page faults and 5.0 CPU-s of kernel time for 300 photos,
    against 0.12 million and 0.3 s with these thresholds (17.9 -> 20.9 photos/s on 2 cores).
    Up to 256 MB of freed memory stays with the worker instead of going back to the system."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's largest allowed value
    mallopt(_M_TRIM_THRESHOLD, 256 << 20)


def _init(spec: DescribeSpec) -> None:
    """Worker process start: its own single-threaded session; OpenCV on one thread; freed
    memory kept for the next photo."""
    global _worker
    _keep_freed_memory()
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    _worker = _state(spec)


def _describe_images(ex: Extractor, images: list) -> np.ndarray:
    """(N, D) descriptors, or (N, V, D) when the preprocessing asks for crop views."""
    if ex.preprocessing.n_views > 1:
        return np.stack([ex.describe_views(img) for img in images])
    return ex.describe_many(images)


def _run_chunk(
    chunk: list[tuple[int, str]], state: tuple[DescribeSpec, Extractor | None] | None = None
) -> list[PhotoResult]:
    from landmark_finder.core.images import ImageLoadError, load_image
    from landmark_finder.verify.keypoints import extract

    state = state or _worker
    assert state is not None
    spec, ex = state
    results, images = [], []
    for i, p in chunk:
        r = PhotoResult(i, Path(p))
        try:
            img = load_image(p, max_side=spec.load_side)
            r.size = img.size
            if spec.local is not None:
                r.local = extract(img, spec.local)
            images.append((r, img))
        except ImageLoadError as e:
            r.error = str(e)
        except Exception as e:  # one odd photo must not stop a build of thousands
            r.error = f"{p}: cannot be described ({type(e).__name__}: {e})"
        results.append(r)
    if ex is not None and images:
        try:
            vecs = _describe_images(ex, [img for _, img in images])
            for (r, _), v in zip(images, vecs, strict=True):
                r.descriptor = v
        except Exception:  # describe one by one, so only the bad photo fails
            for r, img in images:
                try:
                    r.descriptor = _describe_images(ex, [img])[0]
                except Exception as e:
                    r.error, r.local = f"{r.path}: cannot be described ({e})", None
    return results


def describe_photos(
    paths: Iterable[str | Path],
    spec: DescribeSpec,
    workers: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    what: str = N_("describing photos"),
) -> Iterator[PhotoResult]:
    """Describe ``paths`` in worker processes; yields one :class:`PhotoResult` per photo in
    input order, as soon as it and every earlier one are done."""
    paths = [str(p) for p in paths]
    chunks = [
        [(i, paths[i]) for i in range(s, min(s + CHUNK, len(paths)))]
        for s in range(0, len(paths), CHUNK)
    ]
    workers = min(workers or default_workers(), max(1, len(chunks)))
    done = 0
    if workers <= 1:  # in this process, with the same single-threaded session as a worker
        state = _state(spec)
        for c in chunks:
            for r in _run_chunk(c, state):
                done += 1
                if progress:
                    progress(done, len(paths), what)
                yield r
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from landmark_finder.errors import LandmarkFinderError

    # spawn: the parent may hold threads (ONNX Runtime, BLAS) that fork would copy mid-state.
    with ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=_init, initargs=(spec,)
    ) as pool:
        pending: deque = deque()
        todo = iter(chunks)
        try:
            for c in todo:
                pending.append(pool.submit(_run_chunk, c))
                if len(pending) >= 2 * workers:
                    break
            while pending:
                try:
                    results = pending.popleft().result()
                except BrokenProcessPool:  # killed (out of memory, signal): one line, no trace
                    raise LandmarkFinderError(
                        f"a worker process describing photos died; nothing was written ({what})"
                    ) from None
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(_run_chunk, nxt))
                for r in results:
                    done += 1
                    if progress:
                        progress(done, len(paths), what)
                    yield r
        finally:  # the caller stopped early (or failed): do not finish the remaining work
            for f in pending:
                f.cancel()

"""Bounded work for a server on a few cores: a recognition pool and a decode budget.

Recognition is CPU-bound. Running every upload on its own thread (FastAPI's thread pool has
40) only makes them share the cores: twenty clients got 3.5 s answers, threads grew from 6 to 27
and memory from 450 MB to 1.2 GB. So uploads go to a fixed pool with one worker per usable core
behind a bounded queue; when the queue is full the client is told at once, with 503 and a
``Retry-After`` estimated from the measured service time, instead of waiting ever longer.

Decoding is where a small file can take a lot of memory (a 600 KB PNG of 8900² 16-bit RGBA
pixels decodes to gigabytes), so every decode in the server also goes through ``DecodeBudget``:
at most ``workers`` decodes at once, and at most ``budget_bytes`` of estimated decoded pixels
(a single image over the budget still runs, alone). After a large decode the C allocator is
asked to give freed memory back, so the server's RSS returns to its working size.

Batching descriptor inference across concurrent requests was measured and does not pay here:
ONNX Runtime used the same CPU time per photo in batches of 1, 2 and 4 (about 48 ms single-
threaded), and photos of different aspect ratios make different input shapes anyway. What did
pay: one network thread per worker (2 threads per run cost 85 ms of CPU per photo: they spin).
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from landmark_finder.core.cores import usable_cores
from landmark_finder.core.images import open_header
from landmark_finder.core.memory import libc

T = TypeVar("T")

#: The longest ``Retry-After`` the pool tells a client.
MAX_RETRY_AFTER_S = 60
#: How long the server keeps an idle keep-alive connection open: longer than any
#: ``Retry-After``, so a client that waited as told finds its connection still there. With
#: uvicorn's default of 5 s, clients told "5 s" reused connections the server was closing at
#: that very moment (6 "connection closed" errors under 20 clients, all 5.1 s into the run).
KEEP_ALIVE_S = MAX_RETRY_AFTER_S + 15

#: Decodes estimated above this many bytes are followed by ``malloc_trim``.
_TRIM_ABOVE = 64 * 1024 * 1024


class Busy(Exception):
    """The pool's queue is full; ``retry_after`` is a whole number of seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"server busy: try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class PoolStats:
    workers: int
    max_queue: int
    pending: int  # running + queued
    completed: int
    rejected: int
    mean_service_s: float | None


class RecognitionPool:
    """``workers`` threads and room for ``max_queue`` waiting jobs; ``submit`` raises ``Busy``
    instead of queueing more."""

    def __init__(self, workers: int | None = None, max_queue: int | None = None) -> None:
        self.workers = workers or usable_cores()
        self.max_queue = 4 * self.workers if max_queue is None else max_queue
        if self.workers < 1 or self.max_queue < 0:
            raise ValueError("workers must be >= 1 and max_queue >= 0")
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="recognize")
        self._lock = threading.Lock()
        self._pending = self._completed = self._rejected = 0
        self._service_s: float | None = None  # moving average of a job's run time

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        with self._lock:
            if self._pending >= self.workers + self.max_queue:
                self._rejected += 1
                raise Busy(self._retry_after())
            self._pending += 1
        try:
            future = self._executor.submit(self._timed, fn, *args)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(lambda _f: self._finished(None))
        return future

    def _timed(self, fn: Callable[..., T], *args: Any) -> T:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            dt = time.perf_counter() - t0
            with self._lock:
                self._service_s = (
                    dt if self._service_s is None else 0.9 * self._service_s + 0.1 * dt
                )
                self._completed += 1

    def _finished(self, _: object) -> None:
        with self._lock:
            self._pending -= 1

    def _retry_after(self) -> int:
        """Seconds until the queue has drained (at least 1, at most :data:`MAX_RETRY_AFTER_S`)."""
        per_job = self._service_s if self._service_s is not None else 1.0
        wait = math.ceil(self._pending * per_job / self.workers)
        return int(min(MAX_RETRY_AFTER_S, max(1, wait)))

    def stats(self) -> PoolStats:
        with self._lock:
            return PoolStats(
                self.workers,
                self.max_queue,
                self._pending,
                self._completed,
                self._rejected,
                self._service_s,
            )

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def decoded_bytes(source: bytes | str | os.PathLike) -> int:
    """Estimated peak bytes of decoding ``source``, from its header (0 when it has none: the
    loader will refuse it without decoding): two full-size copies at Pillow's 4 bytes a pixel
    (the decoded image and its RGB conversion). JPEG draft mode can only make it smaller."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bombs and corrupt EXIF: the loader says so later
            with open_header(source) as im:  # the loader's restricted decoders, header only
                w, h = im.size
    except Exception:  # not an image Pillow knows: nothing will be decoded
        return 0
    return w * h * 8


def _malloc_trim() -> Callable[[], None]:
    """glibc keeps freed memory of big decodes in its arenas; ``malloc_trim(0)`` returns it."""
    fn = libc("malloc_trim")
    if fn is None:
        return lambda: None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: fn(0) and None


_trim = _malloc_trim()
_M_MMAP_THRESHOLD = -3


def return_big_frees_to_the_os(threshold: int = 4 * 1024 * 1024) -> None:
    """Serve every allocation of ``threshold`` bytes or more with its own mapping, returned to
    the system when freed. glibc otherwise raises this threshold after the first big free (up
    to 32 MB), so Pillow's 16 MB pixel blocks of a large decode end up in per-thread arenas
    and the server kept 3.8 GB after four large uploads."""
    fn = libc("mallopt")
    if fn is not None:
        fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        fn(_M_MMAP_THRESHOLD, threshold)


class DecodeBudget:
    """At most ``slots`` decodes at once and at most ``budget_bytes`` of estimated decoded
    pixels in flight; an image larger than the whole budget waits until it can run alone."""

    def __init__(self, slots: int, budget_bytes: int = 768 * 1024 * 1024) -> None:
        if slots < 1 or budget_bytes < 1:
            raise ValueError("slots and budget_bytes must be positive")
        self.slots, self.budget_bytes = slots, budget_bytes
        self._cond = threading.Condition()
        self._running = 0
        self._bytes = 0
        self.peak_running = 0

    @contextmanager
    def reserve(self, cost: int):
        cost = max(0, cost)
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._running < self.slots
                    and (self._running == 0 or self._bytes + cost <= self.budget_bytes)
                )
            )
            self._running += 1
            self._bytes += cost
            self.peak_running = max(self.peak_running, self._running)
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._bytes -= cost
                self._cond.notify_all()
            if cost > _TRIM_ABOVE:
                _trim()

    def run(self, source: bytes | str | os.PathLike, decode: Callable[[], T]) -> T:
        """``decode()`` within the budget, its cost estimated from ``source``'s header."""
        with self.reserve(decoded_bytes(source)):
            return decode()

"""Memory calls of the C library that Python does not expose (glibc on Linux; elsewhere they
do nothing): the web server's trimming of freed decode buffers, the compressed search's request
for large pages."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import numpy as np

_MADV_HUGEPAGE = 14
_HUGE = 2 * 1024 * 1024


@functools.cache
def _c_library():
    """The C library, loaded once (``find_library`` runs ``ldconfig``); None without one."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def libc(symbol: str):
    """A function of the C library, or None when there is no such library or function."""
    return getattr(_c_library(), symbol, None)  # not glibc: nothing to tune


def advise_huge_pages(buf: np.ndarray) -> None:
    """Ask for 2 MB pages for ``buf``'s memory before it is first written (Linux's
    transparent huge pages in ``madvise`` mode, the default of most distributions; numpy asks
    for its own large arrays, C++ libraries do not). A sequential scan of 64 MB of faiss codes
    took 0.5 ms less per query with them (1M references, 4.7 → 4.2 ms)."""
    fn = libc("madvise")
    if fn is None or buf.nbytes < 2 * _HUGE:
        return
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    start = -(-buf.ctypes.data // _HUGE) * _HUGE  # the whole 2 MB pages inside the buffer
    end = (buf.ctypes.data + buf.nbytes) // _HUGE * _HUGE
    if end > start:
        fn(start, end - start, _MADV_HUGEPAGE)  # a refusal only costs the speed-up

"""The one writer of an index: ``with WriterLock(root): ...`` around every change.

A lock file (``filelock``) rather than a flag in the index: the OS releases it when the
process dies, so a ``kill -9`` never leaves an index locked for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from landmark_finder.errors import IndexBusy

LOCK_NAME = ".writer.lock"


class WriterLock:
    """One writer per index (``filelock``, released by the OS if the process dies).

    ``wait=False`` fails at once with :class:`IndexBusy`; otherwise ``on_wait`` is told once
    that another writer holds the lock, and the call blocks until it is released.
    """

    def __init__(
        self, root: Path, wait: bool = True, on_wait: Callable[[str], None] | None = None
    ) -> None:
        from filelock import FileLock

        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.wait, self.on_wait = wait, on_wait
        self._lock = FileLock(str(self.root / LOCK_NAME))

    def __enter__(self) -> WriterLock:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            msg = f"{self.root}: another process is writing this index"
            if not self.wait:
                raise IndexBusy(msg + "; try again when it has finished") from None
            if self.on_wait:
                self.on_wait(msg + "; waiting for it to finish")
            self._lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()

    @property
    def held(self) -> bool:
        return self._lock.is_locked

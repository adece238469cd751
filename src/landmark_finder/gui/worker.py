"""Running library calls off the UI thread.

Recognition (tens of ms to seconds on the first call), opening an index (loads the network)
and building one (minutes) would freeze the window if run in a slot. A :class:`Task` runs any
callable on a Qt thread pool and reports back through queued signals, so the slots that update
widgets always run on the UI thread. Every exception becomes a one-line message: the app
shows it and goes on; it never takes the window down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from landmark_finder.core.progress import Progress

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside a task's progress callback after the user pressed Cancel."""


def one_line(e: BaseException) -> str:
    """The message a person sees for an exception: its text on one line, or its type."""
    text = " ".join(str(e).split())
    return text or type(e).__name__


class TaskSignals(QObject):
    """Signals live on a QObject owned by the UI thread; QRunnable itself cannot have them."""

    done = Signal(object)  # the callable's return value
    failed = Signal(str)  # one-line error message
    progress = Signal(int, int, str)  # (done, total, what): a landmark_finder Progress
    cancelled = Signal()


class Task(QRunnable):
    """Runs ``fn(progress)``; ``progress(done, total, what)`` is forwarded as a signal.

    ``cancel()`` makes the next progress call raise :class:`Cancelled`, which is how a long
    library call without its own cancellation (``build_index``) is stopped cleanly: it writes
    its output atomically at the end, so stopping it early leaves nothing half-written.
    """

    def __init__(self, fn: Callable[[Progress], Any]) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the owner keeps it until a result arrives
        self.fn = fn
        self.signals = TaskSignals()
        self._cancel = False

    def cancel(self) -> None:
        self._cancel = True

    def _progress(self, done: int, total: int, what: str = "working") -> None:
        if self._cancel:
            raise Cancelled()
        self.signals.progress.emit(int(done), int(total), str(what))

    def run(self) -> None:  # worker thread
        try:
            result = self.fn(self._progress)
        except Cancelled:
            self.signals.cancelled.emit()
        except Exception as e:  # noqa: BLE001 - every failure becomes a message, never a crash
            log.debug("task failed", exc_info=True)
            self.signals.failed.emit(one_line(e))
        else:
            self.signals.done.emit(result)


class TaskRunner(QObject):
    """Starts tasks on a private pool and keeps them alive until they have reported.

    ``busy_changed(bool)`` drives the window's busy indicator.
    """

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self._running: set[Task] = set()

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def start(
        self,
        fn: Callable[[Progress], Any],
        on_done: Callable[[Any], None],
        on_failed: Callable[[str], None],
        on_progress: Progress | None = None,
        on_cancelled: Callable[[], None] | None = None,
    ) -> Task:
        task = Task(fn)
        s = task.signals
        s.done.connect(on_done)
        s.failed.connect(on_failed)
        if on_progress is not None:
            s.progress.connect(on_progress)
        if on_cancelled is not None:
            s.cancelled.connect(on_cancelled)
        for sig in (s.done, s.failed, s.cancelled):
            sig.connect(lambda *_, t=task: self._finished(t))
        was_busy = self.busy
        self._running.add(task)
        if not was_busy:
            self.busy_changed.emit(True)
        self.pool.start(task)
        return task

    def _finished(self, task: Task) -> None:
        self._running.discard(task)
        if not self._running:
            self.busy_changed.emit(False)

    def wait(self, msecs: int = -1) -> bool:
        """Block until the pool is idle (used on close, so no thread outlives the window)."""
        return self.pool.waitForDone(msecs)

"""The progress callback every long-running library function accepts.

Library code reports ``progress(done, total, what)`` and never draws anything itself: the
shells turn the calls into a bar (``landmark_finder.cli.kit.progress_bar``), a Qt signal (the
desktop app) or nothing. This module imports nothing, so any layer can use it.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """``progress(done, total, what)``: ``what`` names the stage; a new ``what`` starts a new
    bar. ``what`` may be left out by stages that have a single step."""

    def __call__(self, done: int, total: int, what: str = ..., /) -> None: ...


def no_progress(done: int, total: int, what: str = "") -> None:
    """The default callback: report nothing."""

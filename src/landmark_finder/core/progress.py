"""A Rich progress bar behind a plain callback, so library code never imports Rich.

Library functions take ``progress(done, total, what)``; shells (CLI, scripts) turn it into a
bar with :func:`progress_bar`. Kept apart from ``cli.py`` so command modules can share it
without importing the CLI (which imports them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

#: ``progress(done, total, what)``: ``what`` names the stage; a new ``what`` starts a new bar.
ProgressFn = Callable[[int, int, str], None]


def no_progress(done: int, total: int, what: str = "") -> None:
    """The default callback: report nothing."""


@contextmanager
def progress_bar(quiet: bool = False, console: Console | None = None) -> Iterator[ProgressFn]:
    """Yield a callback drawing one transient Rich bar per stage on stderr (nothing if quiet)."""
    console = console or Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet,
    ) as p:
        tasks: dict[str, int] = {}

        def update(done: int, total: int, what: str = "working") -> None:
            if what not in tasks:
                tasks[what] = p.add_task(what, total=total)
            p.update(tasks[what], completed=done, total=total)

        yield update

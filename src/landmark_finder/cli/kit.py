"""What every command group of the CLI shares: the two consoles, errors turned into one red
line and an exit code, warning lists, and the progress bar.

Machine-readable output (``--json``) goes to stdout; progress bars, warnings and errors go to
stderr, so ``--json`` output can be piped. Group modules import this kit, never the main CLI
module (which imports them).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

from landmark_finder import defaults
from landmark_finder.core.progress import Progress
from landmark_finder.errors import LandmarkFinderError
from landmark_finder.i18n import _, ngettext, set_language

out = Console()
err = Console(stderr=True)

#: Exit codes: 2 for a problem with the input (the library's errors), 130 for an interruption.
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")
LANG = typer.Option(
    None,
    "--lang",
    help="Language of the messages and of landmark names/addresses (ko, en...; default: from "
    "LANGUAGE/LC_ALL/LC_MESSAGES/LANG). --json output keeps the catalog's own names.",
    show_default=False,
)


def use_language(lang: str | None) -> str:
    """Speak ``lang`` (None: the system locale's language) from here on; returns it."""
    return set_language(lang)


def confidence_option(flag: str, help: str) -> Any:
    """An optional confidence bar, a probability in [0, 1]; ``None`` (not given) means the
    index's own calibrated threshold. One definition, so every command checks it alike."""
    return typer.Option(None, flag, min=0.0, max=1.0, help=help)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``error: message`` in red on stderr and leave with ``code``."""
    label = _("error:")
    err.print(f"[red]{label}[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def library_errors(*also: type[BaseException]) -> Iterator[None]:
    """Turn the library's expected errors (bad photos, catalogs, indexes, models, downloads;
    unreadable files) into one red line and exit code 2, not a traceback."""
    try:
        yield
    except typer.Exit:  # a deliberate exit (click's Exit is a RuntimeError): let it through
        raise
    except (LandmarkFinderError, OSError, ValueError, *also) as e:
        fail(str(e))


def need_module(name: str, what: str, install: str) -> ModuleType:
    """Import an optional part (``what`` needs it) or fail with the command that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        fail(_("{what} ({reason}); {install}").format(what=what, reason=e, install=install))


def print_warnings(lines: list[str], title: str, limit: int = 20) -> None:
    """``title: line`` on stderr for the first ``limit`` lines, then how many more there are.
    ``title`` is already translated; the lines are the library's (English) details."""
    for line in lines[:limit]:
        err.print(f"{title}: {line}", highlight=False, markup=False, soft_wrap=True)
    if len(lines) > limit:
        more = len(lines) - limit
        text = ngettext("... and {n} more", "... and {n} more", more).format(n=more)
        err.print(f"{title}: {text}", markup=False)


def open_recognizer(
    index_dir: Path,
    backbone: str | None = None,
    verify: bool | None = None,
    verify_top: int | None = None,
    always_verify: bool = defaults.ALWAYS_VERIFY,
):
    """The index's recognizer, or the reason it cannot be opened as one red line."""
    from landmark_finder.recognition.recognizer import Recognizer

    with library_errors():
        return Recognizer.open(
            index_dir,
            backbone=backbone,
            verify=verify,
            verify_landmarks=verify_top,
            always_verify=always_verify,
        )


class _Rate(ProgressColumn):
    """Items per second, e.g. ``  3.2 photos/s``."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:5.1f} {self.unit}/s" if speed else f"  –  {self.unit}/s", style="cyan")


@contextmanager
def progress_bar(
    quiet: bool = False,
    console: Console | None = None,
    one_at_a_time: bool = False,
    rate: str | None = None,
) -> Iterator[Progress]:
    """Yield a callback drawing one transient Rich bar per stage on stderr (nothing if quiet).

    ``one_at_a_time``: a new stage replaces the previous bar and the elapsed time is shown
    (training: one bar per epoch, with epoch summaries printed above it on ``err``).
    ``rate``: show the speed in these units per second (``"photos"``).
    """
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if one_at_a_time:
        columns.append(TimeElapsedColumn())
    if rate:
        columns.append(_Rate(rate))
    columns.append(TimeRemainingColumn())
    with RichProgress(*columns, console=console or err, transient=True, disable=quiet) as p:
        tasks: dict[str, int] = {}

        def update(done: int, total: int, what: str = "working") -> None:
            if what not in tasks:
                if one_at_a_time:
                    for old in tasks.values():
                        p.remove_task(old)
                    tasks.clear()
                # the library marks its stage labels with N_(): shown in the reader's language
                tasks[what] = p.add_task(_(what), total=total)
            p.update(tasks[what], completed=done, total=total)

        yield update

"""``landmark-finder gui [INDEX]``: the desktop app (see ``landmark_finder.gui``).

PySide6 is imported only when the command runs, so the rest of the CLI starts fast and works
on machines without Qt.
"""

from __future__ import annotations

from pathlib import Path

import typer

from landmark_finder.cli.kit import fail


def gui(
    index: Path | None = typer.Argument(
        None,
        help="Index directory to open (default: the one used last; any other can be "
        "chosen or built from a gallery folder in the app).",
    ),
) -> None:
    """Open the desktop app: drop, paste or open a photo and see which landmark it shows."""

    try:
        from landmark_finder.gui.app import has_display, run
    except ImportError as e:
        fail(f"the desktop app needs PySide6 ({e}); pip install 'PySide6-Essentials'")
    if not has_display():
        fail(
            "no display: the desktop app needs a graphical session (DISPLAY or WAYLAND_DISPLAY "
            "is not set); use `landmark-finder recognize` or `landmark-finder serve` instead"
        )
    raise typer.Exit(run(index))

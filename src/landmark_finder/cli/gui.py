"""``landmark-finder gui [INDEX]``: the desktop app (see ``landmark_finder.gui``).

PySide6 is imported only when the command runs, so the rest of the CLI starts fast and works
on machines without Qt.
"""

from __future__ import annotations

from pathlib import Path

import typer

from landmark_finder.cli.kit import fail, need_module
from landmark_finder.i18n import _


def gui(
    index: Path | None = typer.Argument(
        None,
        help="Index directory to open (default: the one used last; any other can be "
        "chosen or built from a gallery folder in the app).",
    ),
) -> None:
    """Open the desktop app: drop, paste or open a photo and see which landmark it shows."""

    app = need_module(
        "landmark_finder.gui.launch",
        _("the desktop app needs PySide6"),
        "pip install 'PySide6-Essentials'",
    )
    if not app.has_display():
        fail(
            _(
                "no display: the desktop app needs a graphical session (DISPLAY or "
                "WAYLAND_DISPLAY is not set); use `landmark-finder recognize` or "
                "`landmark-finder serve` instead"
            )
        )
    raise typer.Exit(app.run(index))

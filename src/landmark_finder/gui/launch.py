"""Starting the desktop app: ``landmark-finder gui`` calls :func:`run` after :func:`has_display`
says Qt can open a window."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from landmark_finder.gui.app import MainWindow, startup_language
from landmark_finder.gui.look import configure_fonts
from landmark_finder.i18n import _


def _excepthook(window: MainWindow) -> Callable:
    """An unexpected exception in a slot becomes a message box, not a dead window."""
    previous = sys.excepthook

    def hook(etype, value, tb):
        previous(etype, value, tb)
        try:
            window.show_error(
                _("Unexpected error: {error}").format(error=f"{etype.__name__}: {value}")
            )
        except Exception:  # noqa: BLE001
            pass

    return hook


def run(index: Path | None = None, argv: list[str] | None = None) -> int:
    """Start the app (blocking until the window closes); returns the exit code."""
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Landmark Finder")
    app.setOrganizationName("landmark-finder")
    configure_fonts(app)
    settings = QSettings("landmark-finder", "gui")
    startup_language(settings)
    window = MainWindow(index, settings)
    sys.excepthook = _excepthook(window)
    window.show()
    return app.exec()


def has_display() -> bool:
    """False when Qt would abort for lack of a screen (Linux without X11/Wayland)."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))

"""The desktop window: photo in, "This place is 'X'" out — a thin shell over ``Recognizer``.

Everything slow (opening an index, recognizing, heatmaps, building an index) runs on a
:class:`~landmark_finder.gui.worker.TaskRunner`; slots only move results into widgets. Each
photo gets a generation number so a late answer for an older photo is dropped instead of
overwriting the current one.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QTreeWidgetItem,
)

from landmark_finder.core.images import ImageLoadError, load_image
from landmark_finder.gui.indexactions import IndexActions
from landmark_finder.gui.layout import WindowLayout
from landmark_finder.gui.look import configure_fonts
from landmark_finder.gui.photoinput import PhotoInput
from landmark_finder.gui.widgets import pil_to_qimage
from landmark_finder.gui.worker import TaskRunner
from landmark_finder.recognition.recognizer import Recognition, Recognizer

log = logging.getLogger(__name__)

DISPLAY_SIDE = 1600  # long side of the photo kept for display and heatmaps
REFERENCE_SIDE = 640


def find_heatmap() -> Callable[..., Any] | None:
    """The library's heatmap function, :func:`landmark_finder.explain.heatmap` (imported on
    first use: it loads PyTorch). A None here would hide the heatmap toggle."""
    from landmark_finder import explain

    return explain.heatmap


@dataclass
class Photo:
    """A photo the user gave: where it came from and a display copy (EXIF-rotated)."""

    source: Path | bytes
    label: str
    image: Image.Image


@dataclass
class Answer:
    recognition: Recognition
    reference: Image.Image | None  # the top candidate's most similar reference photo
    reference_error: str | None = None


class MainWindow(WindowLayout, IndexActions, PhotoInput, QMainWindow):
    def __init__(self, index: Path | None = None, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else QSettings("landmark-finder", "gui")
        self.runner = TaskRunner(self)
        self.runner.busy_changed.connect(self._set_busy)
        self.recognizer: Recognizer | None = None
        self.index_path: Path | None = None
        self.photo: Photo | None = None
        self.answer: Answer | None = None
        self.heatmap_fn = find_heatmap()
        self._heatmaps: dict[int, Image.Image] = {}
        self._generation = 0  # photo requests
        self._index_request = 0  # index-open requests
        self._build_task = None
        self.progress_dialog: QProgressDialog | None = None
        self.message_box: QMessageBox | None = None
        self.last_error: str | None = None
        self.setWindowTitle("Landmark Finder")
        self.setAcceptDrops(True)
        self._build_ui()
        self.resize(1180, 760)
        self._show_idle()
        start = index if index is not None else self._remembered_index()
        if start is not None:
            self.open_index(Path(start))

    # -- showing state ----------------------------------------------------------------------

    def _set_busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)
        if busy:
            QGuiApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
        else:
            QGuiApplication.restoreOverrideCursor()

    def _clear_answer(self, title: str, detail: str = "") -> None:
        self.answer = None
        self.answer_title.setText(title)
        self.local_names.setText("")
        self.local_names.setVisible(False)
        self.address_label.setText(detail)
        self.confidence_bar.setValue(0)
        self.confidence_bar.setEnabled(False)
        self.candidates.clear()
        self.candidates_caption.setText("Other candidates")
        self.reference_view.set_image(None)
        self.reference_view.set_placeholder("")
        self.reference_name.setText("")
        self.map_panel.set_location(None, None)

    def _show_idle(self) -> None:
        if self.recognizer is None:
            self._clear_answer(
                "Choose an index to start",
                "Index ▸ Open index… for an index folder, or Index ▸ Build index "
                "from gallery… to make one from your reference photos.",
            )
        else:
            self._clear_answer(
                "Open a photo of a landmark",
                "Use “Open photo…”, drag a photo onto this window, or paste one.",
            )

    def show_error(self, text: str, title: str = "Landmark Finder") -> None:
        """One message box at a time (non-blocking) plus the status bar: never an exception."""
        self.last_error = text
        log.info("%s: %s", title, text)
        self.statusBar().showMessage(text, 15000)
        if self.message_box is not None:
            self.message_box.close()
        box = QMessageBox(
            QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self
        )
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.open()
        self.message_box = box

    # -- photos -----------------------------------------------------------------------------

    def open_photo(self, source: Path | bytes, label: str | None = None) -> None:
        """Show the photo and recognize it (both off the UI thread)."""
        self._generation += 1
        gen = self._generation
        label = label or (source.name if isinstance(source, Path) else "pasted image")
        self.photo = None
        self._heatmaps.clear()
        self.photo_caption.setText(f"{label} — reading…")
        self._clear_answer("Reading the photo…")
        name = None if isinstance(source, Path) else label
        self.runner.start(
            lambda _: load_image(source, max_side=DISPLAY_SIDE, name=name),
            lambda img: self._photo_loaded(gen, Photo(source, label, img)),
            lambda msg: self._photo_failed(gen, msg),
        )

    def _photo_failed(self, gen: int, message: str) -> None:
        if gen != self._generation:
            return
        self.photo_view.set_image(None)
        self.photo_caption.setText("")
        self._clear_answer("This photo cannot be read", message)
        self.show_error(f"This photo cannot be read.\n\n{message}", "Photo not opened")

    def _photo_loaded(self, gen: int, photo: Photo) -> None:
        if gen != self._generation:
            return
        self.photo = photo
        self.photo_view.set_image(pil_to_qimage(photo.image))
        self.photo_caption.setText(f"{photo.label} — {photo.image.width}×{photo.image.height}")
        if self.recognizer is None:
            self._clear_answer(
                "Choose an index to recognize this photo",
                "Index ▸ Open index… (or build one from a gallery folder).",
            )
            return
        self._recognize()

    def _recognize(self) -> None:
        self._generation += 1  # the same photo may be re-recognized with another index
        photo, rec, gen = self.photo, self.recognizer, self._generation
        assert photo is not None and rec is not None
        self._heatmaps.clear()
        self._clear_answer("Recognizing…")

        def work(_):
            name = None if isinstance(photo.source, Path) else photo.label
            r = rec.recognize(photo.source, name=name)
            ref, ref_err = None, None
            if r.candidates:
                try:
                    ref = load_image(r.candidates[0].reference, max_side=REFERENCE_SIDE)
                except ImageLoadError as e:
                    ref_err = str(e)
            return Answer(r, ref, ref_err)

        self.runner.start(
            work,
            lambda a: self._show_answer(gen, a),
            lambda msg: self._recognition_failed(gen, msg),
        )

    def _recognition_failed(self, gen: int, message: str) -> None:
        if gen != self._generation:
            return
        self._clear_answer("Recognition failed", message)
        self.show_error(f"Recognition failed.\n\n{message}", "Recognition failed")

    def _show_answer(self, gen: int, answer: Answer) -> None:
        if gen != self._generation:
            return
        r = answer.recognition
        if r.status == "error":
            self._recognition_failed(gen, r.error or "unknown error")
            return
        self.answer = answer
        lm = r.landmark
        threshold = self.recognizer.index.calibrator.threshold if self.recognizer else 0.5
        if lm is not None:
            self.answer_title.setText(
                f"This place is in '{r.site.name}'"
                if r.status == "site" and r.site is not None
                else f"This place is '{lm.name}'"
            )
            names = [n for n in dict.fromkeys(lm.names.values()) if n and n != lm.name]
            self.local_names.setText(" · ".join(names))
            self.local_names.setVisible(bool(names))
            self.address_label.setText(lm.address or "(no address in the catalog)")
            others, caption = r.candidates[1:], "Other candidates"
            if r.status == "site":  # not sure which member: list them all
                others, caption = r.candidates, "One of these landmarks of the site"
            self.map_panel.set_location(lm.latitude, lm.longitude)
        else:
            self.answer_title.setText("Not a landmark I know")
            self.address_label.setText(
                f"This picture cannot show a landmark: {r.reason}."
                if r.reason and not r.candidates  # a content check answered before matching
                else f"None of the indexed landmarks matches with enough confidence (needs "
                f"{threshold:.0%}). Best guesses are listed below."
            )
            others, caption = r.candidates, "Best guesses"
            self.map_panel.set_location(None, None)
        shown = r.site.confidence if r.status == "site" and r.site is not None else r.confidence
        self.confidence_bar.setEnabled(True)
        self.confidence_bar.setValue(round(shown * 100))
        self.confidence_bar.setProperty("low", shown < threshold)
        self.confidence_bar.style().unpolish(self.confidence_bar)
        self.confidence_bar.style().polish(self.confidence_bar)
        self.candidates_caption.setText(caption)
        for c in others:
            item = QTreeWidgetItem([c.landmark.name, f"{c.score:.2f}"])
            item.setToolTip(0, f"{c.landmark.id}\n{c.landmark.address}")
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.candidates.addTopLevelItem(item)
        if not others:
            self.candidates.addTopLevelItem(QTreeWidgetItem(["(none)", ""]))
        top = r.candidates[0] if r.candidates else None
        self.reference_caption.setText(
            "Matched reference photo" if lm else "Closest reference photo"
        )
        self.reference_view.set_image(pil_to_qimage(answer.reference) if answer.reference else None)
        self.reference_view.set_placeholder(answer.reference_error or "")
        matched = (
            f" — {top.inliers} keypoints match in the same arrangement"
            if top and top.inliers is not None
            else ""
        )
        self.reference_name.setText(
            f"{top.landmark.name} — {Path(top.reference).name}{matched}" if top else ""
        )
        if top:
            self.reference_name.setToolTip(top.reference)
        self.statusBar().showMessage(
            f"{self.photo.label if self.photo else ''}: {r.status} in {r.elapsed_ms:.0f} ms", 10000
        )
        if self.heatmap_action.isChecked():
            self._heatmap_toggled(True)

    # -- heatmap ----------------------------------------------------------------------------

    def _heatmap_toggled(self, on: bool) -> None:
        photo, answer, gen = self.photo, self.answer, self._generation
        if photo is None:
            return
        if not on or self.heatmap_fn is None or answer is None or self.recognizer is None:
            self.photo_view.set_image(pil_to_qimage(photo.image))
            return
        if gen in self._heatmaps:
            self.photo_view.set_image(pil_to_qimage(self._heatmaps[gen]))
            return
        r = answer.recognition
        landmark_id = r.landmark.id if r.landmark else None
        fn, rec = self.heatmap_fn, self.recognizer

        def done(overlay: Image.Image) -> None:
            if gen != self._generation:
                return
            self._heatmaps[gen] = overlay
            if self.heatmap_action.isChecked():
                self.photo_view.set_image(pil_to_qimage(overlay))

        def failed(msg: str) -> None:
            if gen == self._generation:
                self.show_error(f"The heatmap could not be made.\n\n{msg}", "Heatmap")

        self.statusBar().showMessage("Computing the heatmap…")
        self.runner.start(
            lambda _: fn(rec, photo.image, landmark_id).overlay(photo.image), done, failed
        )

    # -- closing ----------------------------------------------------------------------------

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        if self._build_task is not None:
            self._build_task.cancel()
        self.runner.wait(30000)
        super().closeEvent(event)


def _excepthook(window: MainWindow) -> Callable:
    """An unexpected exception in a slot becomes a message box, not a dead window."""
    previous = sys.excepthook

    def hook(etype, value, tb):
        previous(etype, value, tb)
        try:
            window.show_error(f"Unexpected error: {etype.__name__}: {value}")
        except Exception:  # noqa: BLE001
            pass

    return hook


def run(index: Path | None = None, argv: list[str] | None = None) -> int:
    """Start the app (blocking until the window closes); returns the exit code."""
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Landmark Finder")
    app.setOrganizationName("landmark-finder")
    configure_fonts(app)
    window = MainWindow(index)
    sys.excepthook = _excepthook(window)
    window.show()
    return app.exec()


def has_display() -> bool:
    """False when Qt would abort for lack of a screen (Linux without X11/Wayland)."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))

"""The desktop window: photo in, "This place is 'X'" out — a thin shell over ``Recognizer``.

Everything slow (opening an index, recognizing, heatmaps, building an index) runs on a
:class:`~landmark_finder.gui.worker.TaskRunner`; slots only move results into widgets. Each
photo gets a generation number so a late answer for an older photo is dropped instead of
overwriting the current one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QToolBar,
    QTreeWidgetItem,
)

from landmark_finder.core.images import ImageLoadError, load_image
from landmark_finder.gui.indexactions import IndexActions, index_summary
from landmark_finder.gui.layout import WindowLayout
from landmark_finder.gui.photoinput import PhotoInput
from landmark_finder.gui.widgets import pil_to_qimage, plain_text_labels, plain_tooltip
from landmark_finder.gui.worker import TaskRunner
from landmark_finder.i18n import N_, _, current_language, ngettext, set_language
from landmark_finder.recognition.recognizer import Recognition, Recognizer

log = logging.getLogger(__name__)

#: Recognition statuses, as the status bar shows them (marked here for translation).
STATUS_WORDS = (N_("recognized"), N_("site"), N_("unknown"), N_("error"))
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
    #: every landmark found in the photo (``FoundLandmark``), boxes in pixels of a photo
    #: ``found_size`` large
    found: list = field(default_factory=list)
    found_size: tuple[int, int] = (1, 1)


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
        self.setWindowTitle(_("Landmark Finder"))
        self.setAcceptDrops(True)
        self._build_ui()
        plain_text_labels(self)  # names and file names are never rendered as HTML
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
        self.candidates_caption.setText(_("Other candidates"))
        self.reference_view.set_image(None)
        self.reference_view.set_placeholder("")
        self.reference_name.setText("")
        self.photo_view.set_outlines([], (1, 1))
        self.map_panel.set_location(None, None)

    def _show_idle(self) -> None:
        if self.recognizer is None:
            self._clear_answer(
                _("Choose an index to start"),
                _(
                    "Index ▸ Open index… for an index folder, or Index ▸ Build index "
                    "from gallery… to make one from your reference photos."
                ),
            )
        else:
            self._clear_answer(
                _("Open a photo of a landmark"),
                _("Use “Open photo…”, drag a photo onto this window, or paste one."),
            )

    def show_error(self, text: str, title: str | None = None) -> None:
        """One message box at a time (non-blocking) plus the status bar: never an exception."""
        self.last_error = text
        title = title or _("Landmark Finder")
        log.info("%s: %s", title, text)
        self.statusBar().showMessage(text, 15000)
        if self.message_box is not None:
            self.message_box.close()
        box = QMessageBox(
            QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self
        )
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.open()
        self.message_box = box

    # -- photos -----------------------------------------------------------------------------

    def open_photo(self, source: Path | bytes, label: str | None = None) -> None:
        """Show the photo and recognize it (both off the UI thread)."""
        self._generation += 1
        gen = self._generation
        label = label or (source.name if isinstance(source, Path) else _("pasted image"))
        self.photo = None
        self._heatmaps.clear()
        self.photo_caption.setText(_("{photo} — reading…").format(photo=label))
        self._clear_answer(_("Reading the photo…"))
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
        self._clear_answer(_("This photo cannot be read"), message)
        self.show_error(_("This photo cannot be read.") + f"\n\n{message}", _("Photo not opened"))

    def _photo_loaded(self, gen: int, photo: Photo) -> None:
        if gen != self._generation:
            return
        self.photo = photo
        self.photo_view.set_image(pil_to_qimage(photo.image))
        self.photo_caption.setText(f"{photo.label} — {photo.image.width}×{photo.image.height}")
        if self.recognizer is None:
            self._clear_answer(
                _("Choose an index to recognize this photo"),
                _("Index ▸ Open index… (or build one from a gallery folder)."),
            )
            return
        self._recognize()

    def _recognize(self) -> None:
        self._generation += 1  # the same photo may be re-recognized with another index
        photo, rec, gen = self.photo, self.recognizer, self._generation
        assert photo is not None and rec is not None
        self._heatmaps.clear()
        self._clear_answer(_("Recognizing…"))

        def work(_):
            from landmark_finder.explain.locate import recognize_all  # loads PyTorch

            name = None if isinstance(photo.source, Path) else photo.label
            r, found = recognize_all(rec, photo.source, name=name)
            ref, ref_err = None, None
            if r.candidates:
                try:
                    ref = load_image(r.candidates[0].reference, max_side=REFERENCE_SIDE)
                except ImageLoadError as e:
                    ref_err = str(e)
            return Answer(r, ref, ref_err, found.landmarks, found.size)

        self.runner.start(
            work,
            lambda a: self._show_answer(gen, a),
            lambda msg: self._recognition_failed(gen, msg),
        )

    def _recognition_failed(self, gen: int, message: str) -> None:
        if gen != self._generation:
            return
        self._clear_answer(_("Recognition failed"), message)
        self.show_error(_("Recognition failed.") + f"\n\n{message}", _("Recognition failed"))

    def _show_answer(self, gen: int, answer: Answer) -> None:
        if gen != self._generation:
            return
        r = answer.recognition
        if r.status == "error":
            self._recognition_failed(gen, r.error or _("unknown error"))
            return
        self.answer = answer
        lang = current_language()
        lm = r.landmark.localized(lang) if r.landmark else None
        threshold = self.recognizer.index.calibrator.threshold if self.recognizer else 0.5
        if lm is not None:
            self.answer_title.setText(
                _("This place is in '{site}'").format(site=r.site.name)
                if r.status == "site" and r.site is not None
                else _("This place is '{name}'").format(name=lm.name)
            )
            names = [
                n for n in dict.fromkeys([r.landmark.name, *lm.names.values()]) if n != lm.name
            ]
            self.local_names.setText(" · ".join(names))
            self.local_names.setVisible(bool(names))
            self.address_label.setText(lm.address or _("(no address in the catalog)"))
            others, caption = r.candidates[1:], _("Other candidates")
            if r.status == "site":  # not sure which member: list them all
                others, caption = r.candidates, _("One of these landmarks of the site")
            self.map_panel.set_location(lm.latitude, lm.longitude)
        else:
            self.answer_title.setText(_("Not a landmark I know"))
            self.address_label.setText(
                _("This picture cannot show a landmark: {reason}.").format(reason=r.reason)
                if r.reason and not r.candidates  # a content check answered before matching
                else _(
                    "None of the indexed landmarks matches with enough confidence (needs "
                    "{threshold}). Best guesses are listed below."
                ).format(threshold=f"{threshold:.0%}")
            )
            others, caption = r.candidates, _("Best guesses")
            self.map_panel.set_location(None, None)
        shown = r.site.confidence if r.status == "site" and r.site is not None else r.confidence
        self.confidence_bar.setEnabled(True)
        self.confidence_bar.setValue(round(shown * 100))
        self.confidence_bar.setProperty("low", shown < threshold)
        self.confidence_bar.style().unpolish(self.confidence_bar)
        self.confidence_bar.style().polish(self.confidence_bar)
        self.candidates_caption.setText(caption)
        for c in others:
            item = QTreeWidgetItem([c.landmark.name_in(lang), f"{c.score:.2f}"])
            item.setToolTip(0, plain_tooltip(f"{c.landmark.id}\n{c.landmark.address_in(lang)}"))
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.candidates.addTopLevelItem(item)
        if not others:
            self.candidates.addTopLevelItem(QTreeWidgetItem([_("(none)"), ""]))
        top = r.candidates[0] if r.candidates else None
        self.reference_caption.setText(
            _("Matched reference photo") if lm else _("Closest reference photo")
        )
        self.reference_view.set_image(pil_to_qimage(answer.reference) if answer.reference else None)
        self.reference_view.set_placeholder(answer.reference_error or "")
        matched = (
            " — "
            + ngettext(
                "{n} keypoint matches in the same arrangement",
                "{n} keypoints match in the same arrangement",
                top.inliers,
            ).format(n=top.inliers)
            if top and top.inliers is not None
            else ""
        )
        self.reference_name.setText(
            f"{top.landmark.name_in(lang)} — {Path(top.reference).name}{matched}" if top else ""
        )
        if top:
            self.reference_name.setToolTip(plain_tooltip(top.reference))
        self.statusBar().showMessage(
            _("{photo}: {status} in {ms} ms").format(
                photo=self.photo.label if self.photo else "",
                status=_(r.status),
                ms=f"{r.elapsed_ms:.0f}",
            ),
            10000,
        )
        self._show_found(answer, lang)
        if self.heatmap_action.isChecked():
            self._heatmap_toggled(True)

    def _show_found(self, answer: Answer, lang: str) -> None:
        """Every landmark found: its outline over the photo, a marker each on the map."""
        found = answer.found
        self.photo_view.set_outlines(
            [
                (f.polygon, f"{i}. {f.landmark.name_in(lang)} {f.confidence:.0%}")
                for i, f in enumerate(found, 1)
            ],
            answer.found_size,
        )
        located = [
            (f.landmark.latitude, f.landmark.longitude)
            for f in found
            if f.landmark.latitude is not None and f.landmark.longitude is not None
        ]
        if located and self.map_panel.view.location is None:
            self.map_panel.set_location(*located[0])
        if self.map_panel.view.location is not None:
            first = self.map_panel.view.location
            self.map_panel.view.set_others([p for p in located if p != first])

    # -- language ---------------------------------------------------------------------------

    def set_interface_language(self, lang: str) -> None:
        """Switch the window to ``lang`` now (menus, labels, the answer shown) and remember it."""
        self.settings.setValue("language", set_language(lang))
        self.menuBar().clear()
        for tb in self.findChildren(QToolBar):
            self.removeToolBar(tb)
            tb.deleteLater()
        for w in (self.busy, self.index_label):
            self.statusBar().removeWidget(w)
            w.deleteLater()
        self._build_ui()
        self.setWindowTitle(_("Landmark Finder"))
        if self.index_path is not None and self.recognizer is not None:
            self.index_label.setText(index_summary(self.index_path, self.recognizer.index))
            self.index_label.setToolTip(str(self.index_path))
        if self.photo is not None:
            self.photo_view.set_image(pil_to_qimage(self.photo.image))
            self.photo_caption.setText(
                f"{self.photo.label} — {self.photo.image.width}×{self.photo.image.height}"
            )
        if self.answer is not None:
            self._show_answer(self._generation, self.answer)
        else:
            self._show_idle()

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
                self.show_error(_("The heatmap could not be made.") + f"\n\n{msg}", _("Heatmap"))

        self.statusBar().showMessage(_("Computing the heatmap…"))
        self.runner.start(
            lambda _: fn(rec, photo.image, landmark_id).overlay(photo.image), done, failed
        )

    # -- closing ----------------------------------------------------------------------------

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        if self._build_task is not None:
            self._build_task.cancel()
        self.runner.wait(30000)
        super().closeEvent(event)


def startup_language(settings: QSettings) -> str:
    """The language chosen in the Language menu last time, else the system locale's
    (``LANGUAGE``/``LC_ALL``/``LC_MESSAGES``/``LANG``); made current and returned."""
    return set_language(str(settings.value("language", "") or "") or None)

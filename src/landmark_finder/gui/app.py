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
from PySide6.QtCore import QSettings, QSize, Qt, QUrl
from PySide6.QtGui import QAction, QFont, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QSplitter,
    QStyle,
    QToolBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from landmark_finder.core.images import IMAGE_EXTENSIONS, ImageLoadError, load_image
from landmark_finder.gui.indexdialog import BuildIndexDialog, BuildRequest, check_request
from landmark_finder.gui.mapview import MapPanel
from landmark_finder.gui.widgets import (
    PhotoView,
    pil_to_qimage,
    plain_text_labels,
    plain_tooltip,
    qimage_to_png,
)
from landmark_finder.gui.worker import TaskRunner
from landmark_finder.recognition.recognizer import Recognition, Recognizer

log = logging.getLogger(__name__)

DISPLAY_SIDE = 1600  # long side of the photo kept for display and heatmaps
REFERENCE_SIDE = 640
#: Tried in order for characters the UI font lacks; the first with Hangul wins. Debian/Ubuntu
#: ship "Noto Sans CJK KR" in fonts-noto-cjk; the others are the Korean fonts of other systems.
FALLBACK_FAMILIES = [
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "NanumGothic",
    "Malgun Gothic",
    "Apple SD Gothic Neo",
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
]
PHOTO_FILTER = "Photos ({});;All files (*)".format(
    " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
)

STYLE = """
QLabel#caption { color: #5b6470; font-weight: 600; }
QLabel#muted { color: #5b6470; }
QLabel#error { color: #b3261e; }
QLabel#title { color: #1b1f24; }
QFrame#card { background: #ffffff; border: 1px solid #d9dee4; border-radius: 8px; }
QMainWindow, QSplitter { background: #eef1f4; }
QProgressBar#confidence { border: 1px solid #c4ccd4; border-radius: 4px; background: #f3f5f7;
    text-align: center; height: 16px; }
QProgressBar#confidence::chunk { background: #3c8d5a; border-radius: 3px; }
QProgressBar#confidence[low="true"]::chunk { background: #c98a1b; }
"""


def find_heatmap() -> Callable[..., Any] | None:
    """``landmark_finder.explain.heatmap`` when that module is installed, else None.

    Without it the heatmap toggle is hidden: the app never draws a made-up heatmap.
    """
    try:
        from landmark_finder import explain  # type: ignore[attr-defined]
    except ImportError:
        return None
    fn = getattr(explain, "heatmap", None)
    return fn if callable(fn) else None


def configure_fonts(app: QApplication) -> QFont:
    """Keep the platform UI font but fall back to a Hangul font, so Korean names never show
    as empty boxes (tofu) on systems whose default font lacks Hangul."""
    font = QFont(app.font())
    base = font.family()
    font.setFamilies([base, *[f for f in FALLBACK_FAMILIES if f != base]])
    app.setFont(font)
    return font


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


def _card() -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("card")
    lay = QVBoxLayout(frame)
    lay.setContentsMargins(14, 12, 14, 12)
    lay.setSpacing(6)
    return frame, lay


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("caption")
    return label


class MainWindow(QMainWindow):
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
        plain_text_labels(self)  # names and file names are never rendered as HTML
        self.resize(1180, 760)
        self._show_idle()
        start = index if index is not None else self._remembered_index()
        if start is not None:
            self.open_index(Path(start))

    # -- layout -----------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.setStyleSheet(STYLE)
        style = self.style()
        self.open_action = QAction(
            style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton), "Open photo…", self
        )
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(self.choose_photo)
        self.paste_action = QAction("Paste photo", self)
        self.paste_action.setShortcut(QKeySequence.StandardKey.Paste)
        self.paste_action.triggered.connect(self.paste)
        self.index_action = QAction(
            style.standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon), "Open index…", self
        )
        self.index_action.triggered.connect(self.choose_index)
        self.build_action = QAction(
            style.standardIcon(QStyle.StandardPixmap.SP_FileDialogNewFolder),
            "Build index from gallery…",
            self,
        )
        self.build_action.triggered.connect(self.choose_build)
        self.heatmap_action = QAction("Heatmap", self)
        self.heatmap_action.setCheckable(True)
        self.heatmap_action.setToolTip("Show which parts of the photo the answer rests on")
        self.heatmap_action.toggled.connect(self._heatmap_toggled)
        self.heatmap_action.setVisible(self.heatmap_fn is not None)
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)

        menu = self.menuBar()
        m = menu.addMenu("&File")
        m.addActions([self.open_action, self.paste_action])
        m.addSeparator()
        m.addAction(quit_action)
        m = menu.addMenu("&Index")
        m.addActions([self.index_action, self.build_action])
        if self.heatmap_fn is not None:
            menu.addMenu("&View").addAction(self.heatmap_action)

        tb = QToolBar("Main")
        tb.setMovable(False)
        tb.setIconSize(QSize(18, 18))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addAction(self.open_action)
        tb.addSeparator()
        tb.addAction(self.index_action)
        tb.addAction(self.build_action)
        tb.addSeparator()
        tb.addAction(self.heatmap_action)
        self.addToolBar(tb)

        # left: the photo
        self.photo_view = PhotoView(
            "Drop a photo here, paste one (Ctrl+V)\nor click “Open photo…”", QSize(320, 240)
        )
        self.photo_view.dashed = True
        self.photo_caption = QLabel("")
        self.photo_caption.setObjectName("muted")
        left, left_lay = _card()
        left_lay.addWidget(self.photo_view, 1)
        left_lay.addWidget(self.photo_caption)

        # right: the answer
        answer, a = _card()
        self.answer_title = QLabel()
        self.answer_title.setObjectName("title")
        self.answer_title.setWordWrap(True)
        self.answer_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        f = QFont(self.font())
        f.setPointSizeF(f.pointSizeF() * 1.75)
        f.setBold(True)
        self.answer_title.setFont(f)
        self.local_names = QLabel()
        self.local_names.setObjectName("muted")
        self.local_names.setWordWrap(True)
        self.address_label = QLabel()
        self.address_label.setWordWrap(True)
        self.address_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.confidence_bar = QProgressBar()
        self.confidence_bar.setObjectName("confidence")
        self.confidence_bar.setRange(0, 100)
        self.confidence_bar.setFormat("%p %")
        conf_row = QHBoxLayout()
        conf_row.addWidget(_caption("Confidence"))
        conf_row.addWidget(self.confidence_bar, 1)
        a.addWidget(self.answer_title)
        a.addWidget(self.local_names)
        a.addWidget(self.address_label)
        a.addLayout(conf_row)

        details = QWidget()
        grid = QGridLayout(details)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(4)
        ref_card, r = _card()
        self.reference_caption = _caption("Matched reference photo")
        self.reference_view = PhotoView("", QSize(200, 150))
        self.reference_name = QLabel()
        self.reference_name.setObjectName("muted")
        self.reference_name.setWordWrap(True)
        r.addWidget(self.reference_caption)
        r.addWidget(self.reference_view, 1)
        r.addWidget(self.reference_name)
        map_card, mp = _card()
        self.map_panel = MapPanel()
        mp.addWidget(_caption("Where it is"))
        mp.addWidget(self.map_panel, 1)
        grid.addWidget(ref_card, 0, 0)
        grid.addWidget(map_card, 0, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)

        cand_card, c = _card()
        self.candidates_caption = _caption("Other candidates")
        self.candidates = QTreeWidget()
        self.candidates.setColumnCount(2)
        self.candidates.setHeaderLabels(["Landmark", "Similarity"])
        self.candidates.setRootIsDecorated(False)
        self.candidates.setFrameShape(QFrame.Shape.NoFrame)
        header = self.candidates.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.candidates.headerItem().setTextAlignment(
            1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        )
        self.candidates.setMinimumHeight(118)
        c.addWidget(self.candidates_caption)
        c.addWidget(self.candidates, 1)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(10)
        rl.addWidget(answer)
        rl.addWidget(details, 5)
        rl.addWidget(cand_card, 2)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setSizes([560, 600])
        split.setChildrenCollapsible(False)
        holder = QWidget()
        hl = QVBoxLayout(holder)
        hl.setContentsMargins(10, 10, 10, 6)
        hl.addWidget(split)
        self.setCentralWidget(holder)

        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(140)
        self.busy.setMaximumHeight(14)
        self.busy.setTextVisible(False)
        self.busy.hide()
        self.index_label = QLabel("No index")
        self.index_label.setObjectName("muted")
        self.statusBar().addPermanentWidget(self.busy)
        self.statusBar().addPermanentWidget(self.index_label)

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
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.open()
        self.message_box = box

    # -- index ------------------------------------------------------------------------------

    def _remembered_index(self) -> str | None:
        v = self.settings.value("index")
        return v if isinstance(v, str) and v and Path(v).is_dir() else None

    def choose_index(self) -> None:
        start = str(self.index_path or self.settings.value("index", "") or "")
        d = QFileDialog.getExistingDirectory(self, "Choose an index folder", start)
        if d:
            self.open_index(Path(d))

    def open_index(self, path: Path) -> None:
        self._index_request += 1
        req = self._index_request  # only the latest request may set the index
        self.statusBar().showMessage(f"Opening index {path}…")
        self.index_label.setText(f"Opening {path.name}…")
        self.runner.start(
            lambda _: Recognizer.open(path),
            lambda rec: self._index_opened(req, path, rec),
            lambda msg: self._index_failed(req, path, msg),
        )

    def _index_opened(self, req: int, path: Path, rec: Recognizer) -> None:
        if req != self._index_request:
            return
        self.recognizer, self.index_path = rec, path
        self._heatmaps.clear()
        idx = rec.index
        self.index_label.setText(
            f"Index: {path.name} ({len(idx.landmark_ids)} landmarks, {len(idx.records)} photos, "
            f"{idx.backbone})"
        )
        self.index_label.setToolTip(str(path))
        self.settings.setValue("index", str(path))
        self.statusBar().showMessage(f"Opened index {path}", 5000)
        if self.photo is not None:
            self._recognize()
        else:
            self._show_idle()

    def _index_failed(self, req: int, path: Path, message: str) -> None:
        if req != self._index_request:
            return
        self.index_label.setText(
            f"Index: {self.index_path.name}" if self.recognizer and self.index_path else "No index"
        )
        self.show_error(f"Could not open the index.\n\n{message}", "Index not opened")

    def choose_build(self) -> None:
        dlg = BuildIndexDialog(self, str(Path(self.settings.value("gallery", "") or "").parent))
        if dlg.exec() == BuildIndexDialog.DialogCode.Accepted and (req := dlg.request()):
            if (req.out / "CURRENT").is_file():
                ok = QMessageBox.question(
                    self, "Replace index?", f"{req.out} already holds an index. Replace it?"
                )
                if ok != QMessageBox.StandardButton.Yes:
                    return
            self.build_index(req)

    def build_index(self, req: BuildRequest) -> None:
        """Build in the background with a progress dialog; open the index when it is done."""
        problem = check_request(req)
        if problem:
            self.show_error(problem, "Index not built")
            return
        if self._build_task is not None:
            self.show_error("An index is already being built.", "Index not built")
            return
        self.settings.setValue("gallery", str(req.gallery))
        dlg = QProgressDialog("Loading the network…", "Cancel", 0, 0, self)
        dlg.setWindowTitle("Building index")
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.setMinimumWidth(420)
        self.progress_dialog = dlg

        def work(progress):
            from landmark_finder.core.catalog import load_catalog
            from landmark_finder.core.descriptors import Preprocessing
            from landmark_finder.recognition.indexing import build_index

            cat = load_catalog(req.catalog) if req.catalog else None
            return build_index(
                req.gallery,
                req.out,
                cat,
                req.backbone,
                Preprocessing(size=req.size),
                progress=progress,
            )

        def on_progress(done: int, total: int, what: str) -> None:
            dlg.setLabelText(f"{what[:1].upper()}{what[1:]}: {done} of {total}")
            dlg.setMaximum(max(total, 1))
            dlg.setValue(min(done, total))

        def finish() -> None:
            self._build_task = None
            dlg.close()

        def done(result) -> None:
            finish()
            index, report = result
            extra = ""
            if report.skipped:
                extra += f"\n{len(report.skipped)} photos skipped, e.g. {report.skipped[0]}"
            if report.warnings:
                extra += f"\n{len(report.warnings)} warnings, e.g. {report.warnings[0]}"
            self.statusBar().showMessage(
                f"Indexed {report.n_photos} photos of {report.n_landmarks} landmarks → {req.out}",
                15000,
            )
            if extra:
                self.show_error(f"Index built with problems:{extra}", "Index built")
            self.open_index(req.out)

        def failed(message: str) -> None:
            finish()
            self.show_error(f"The index was not built.\n\n{message}", "Index not built")

        def cancelled() -> None:
            finish()
            self.statusBar().showMessage("Index building cancelled; nothing was written.", 10000)

        self._build_task = self.runner.start(work, done, failed, on_progress, cancelled)
        dlg.canceled.connect(self._build_task.cancel)
        dlg.show()

    # -- photos -----------------------------------------------------------------------------

    def choose_photo(self) -> None:
        start = str(self.settings.value("photos", "") or "")
        f, _ = QFileDialog.getOpenFileName(self, "Open a photo", start, PHOTO_FILTER)
        if f:
            self.settings.setValue("photos", str(Path(f).parent))
            self.open_photo(Path(f))

    def paste(self) -> None:
        """Ctrl+V: an image (copied from a browser or viewer) or a copied photo file."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            self.show_error("The clipboard is empty.")
            return
        self._open_mime(mime, "The clipboard holds no image and no photo file.")

    def _open_mime(self, mime, nothing: str) -> None:
        files = (
            [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
            if mime.hasUrls()
            else []
        )
        if files:
            self.open_photo(files[0])
        elif mime.hasImage():
            try:
                data = qimage_to_png(mime.imageData())
            except Exception as e:  # noqa: BLE001
                self.show_error(f"pasted image: {e}")
                return
            self.open_photo(data, "pasted image")
        elif mime.hasText() and (text := mime.text().strip()):
            url = QUrl(text)
            path = Path(url.toLocalFile()) if url.isLocalFile() else Path(text).expanduser()
            if path.is_file():
                self.open_photo(path)
            else:
                self.show_error(f"{text[:200]}: not a photo file")
        else:
            self.show_error(nothing)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt name
        mime = event.mimeData()
        if mime.hasImage() or any(u.isLocalFile() for u in mime.urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt name
        self._open_mime(event.mimeData(), "Nothing to open in what was dropped.")
        event.acceptProposedAction()

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
            self.answer_title.setText(f"This place is '{lm.name}'")
            names = [n for n in dict.fromkeys(lm.names.values()) if n and n != lm.name]
            self.local_names.setText(" · ".join(names))
            self.local_names.setVisible(bool(names))
            self.address_label.setText(lm.address or "(no address in the catalog)")
            others, caption = r.candidates[1:], "Other candidates"
            self.map_panel.set_location(lm.latitude, lm.longitude)
        else:
            self.answer_title.setText("Not a landmark I know")
            self.address_label.setText(
                f"None of the indexed landmarks matches with enough confidence (needs "
                f"{threshold:.0%}). Best guesses are listed below."
            )
            others, caption = r.candidates, "Best guesses"
            self.map_panel.set_location(None, None)
        self.confidence_bar.setEnabled(True)
        self.confidence_bar.setValue(round(r.confidence * 100))
        self.confidence_bar.setProperty("low", r.confidence < threshold)
        self.confidence_bar.style().unpolish(self.confidence_bar)
        self.confidence_bar.style().polish(self.confidence_bar)
        self.candidates_caption.setText(caption)
        for c in others:
            item = QTreeWidgetItem([c.landmark.name, f"{c.score:.2f}"])
            item.setToolTip(0, plain_tooltip(f"{c.landmark.id}\n{c.landmark.address}"))
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
            self.reference_name.setToolTip(plain_tooltip(top.reference))
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

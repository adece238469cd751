"""Opening and building an index from the desktop app (a mixin of
:class:`~landmark_finder.gui.app.MainWindow`): the work runs on the window's task runner."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog

from landmark_finder.gui.indexdialog import BuildIndexDialog, BuildRequest, check_request
from landmark_finder.i18n import _, n_landmarks, n_photos, ngettext
from landmark_finder.recognition.recognizer import Recognizer


class IndexActions:
    """Choose, open (remembered across runs) and build an index."""

    def _remembered_index(self) -> str | None:
        v = self.settings.value("index")
        return v if isinstance(v, str) and v and Path(v).is_dir() else None

    def choose_index(self) -> None:
        start = str(self.index_path or self.settings.value("index", "") or "")
        d = QFileDialog.getExistingDirectory(self, _("Choose an index folder"), start)
        if d:
            self.open_index(Path(d))

    def open_index(self, path: Path) -> None:
        self._index_request += 1
        req = self._index_request  # only the latest request may set the index
        self.statusBar().showMessage(_("Opening index {path}…").format(path=path))
        self.index_label.setText(_("Opening {name}…").format(name=path.name))
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
        self.index_label.setText(index_summary(path, idx))
        self.index_label.setToolTip(str(path))
        self.settings.setValue("index", str(path))
        self.statusBar().showMessage(_("Opened index {path}").format(path=path), 5000)
        if self.photo is not None:
            self._recognize()
        else:
            self._show_idle()

    def _index_failed(self, req: int, path: Path, message: str) -> None:
        if req != self._index_request:
            return
        self.index_label.setText(
            _("Index: {name}").format(name=self.index_path.name)
            if self.recognizer and self.index_path
            else _("No index")
        )
        self.show_error(_("Could not open the index.") + f"\n\n{message}", _("Index not opened"))

    def choose_build(self) -> None:
        dlg = BuildIndexDialog(self, str(Path(self.settings.value("gallery", "") or "").parent))
        if dlg.exec() == BuildIndexDialog.DialogCode.Accepted and (req := dlg.request()):
            if (req.out / "CURRENT").is_file():
                ok = QMessageBox.question(
                    self,
                    _("Replace index?"),
                    _("{path} already holds an index. Replace it?").format(path=req.out),
                )
                if ok != QMessageBox.StandardButton.Yes:
                    return
            self.build_index(req)

    def build_index(self, req: BuildRequest) -> None:
        """Build in the background with a progress dialog; open the index when it is done."""
        problem = check_request(req)
        if problem:
            self.show_error(problem, _("Index not built"))
            return
        if self._build_task is not None:
            self.show_error(_("An index is already being built."), _("Index not built"))
            return
        self.settings.setValue("gallery", str(req.gallery))
        dlg = QProgressDialog(_("Loading the network…"), _("Cancel"), 0, 0, self)
        dlg.setWindowTitle(_("Building index"))
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.setMinimumWidth(420)
        self.progress_dialog = dlg

        def work(progress):
            from landmark_finder.core.catalog import load_catalog
            from landmark_finder.recognition.indexing import build_index

            cat = load_catalog(req.catalog) if req.catalog else None
            return build_index(req.gallery, req.out, cat, req.config(), progress=progress)

        def on_progress(done: int, total: int, what: str) -> None:
            what = _(what)  # the library's stage labels are marked with N_()
            text = _("{stage}: {done} of {total}").format(
                stage=f"{what[:1].upper()}{what[1:]}", done=done, total=total
            )
            dlg.setLabelText(text)
            dlg.setMaximum(max(total, 1))
            dlg.setValue(min(done, total))

        def finish() -> None:
            self._build_task = None
            dlg.close()

        def done(result) -> None:
            finish()
            index, report = result
            extra = ""
            if n := len(report.skipped):
                text = ngettext(
                    "{n} photo skipped, e.g. {example}", "{n} photos skipped, e.g. {example}", n
                )
                extra += "\n" + text.format(n=n, example=report.skipped[0])
            if n := len(report.warnings):
                text = ngettext("{n} warning, e.g. {example}", "{n} warnings, e.g. {example}", n)
                extra += "\n" + text.format(n=n, example=report.warnings[0])
            text = _("Indexed {photos} of {landmarks} → {out}").format(
                photos=n_photos(report.n_photos),
                landmarks=n_landmarks(report.n_landmarks),
                out=req.out,
            )
            self.statusBar().showMessage(text, 15000)
            if extra:
                self.show_error(_("Index built with problems:") + extra, _("Index built"))
            self.open_index(req.out)

        def failed(message: str) -> None:
            finish()
            self.show_error(_("The index was not built.") + f"\n\n{message}", _("Index not built"))

        def cancelled() -> None:
            finish()
            self.statusBar().showMessage(_("Index building cancelled; nothing was written."), 10000)

        self._build_task = self.runner.start(work, done, failed, on_progress, cancelled)
        dlg.canceled.connect(self._build_task.cancel)
        dlg.show()


def index_summary(path: Path, idx) -> str:
    """``Index: NAME (3 landmarks, 40 photos, BACKBONE)`` in the current language."""
    return _("Index: {name} ({landmarks}, {photos}, {backbone})").format(
        name=path.name,
        landmarks=n_landmarks(len(idx.landmark_ids)),
        photos=n_photos(len(idx.records)),
        backbone=idx.backbone,
    )

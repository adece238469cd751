"""Where photos come from in the desktop app: the open dialog, the clipboard, drag and drop
(a mixin of :class:`~landmark_finder.gui.app.MainWindow`, which opens them with
``open_photo``)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog

from landmark_finder.core.images import IMAGE_EXTENSIONS
from landmark_finder.gui.widgets import qimage_to_png
from landmark_finder.i18n import _


def photo_filter() -> str:
    """The open dialog's file types, in the current language."""
    patterns = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
    return _("Photos ({patterns});;All files (*)").format(patterns=patterns)


class PhotoInput:
    """Open, paste or drop a photo."""

    def choose_photo(self) -> None:
        start = str(self.settings.value("photos", "") or "")
        f, _chosen_filter = QFileDialog.getOpenFileName(
            self, _("Open a photo"), start, photo_filter()
        )
        if f:
            self.settings.setValue("photos", str(Path(f).parent))
            self.open_photo(Path(f))

    def paste(self) -> None:
        """Ctrl+V: an image (copied from a browser or viewer) or a copied photo file."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            self.show_error(_("The clipboard is empty."))
            return
        self._open_mime(mime, _("The clipboard holds no image and no photo file."))

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
                self.show_error(_("pasted image: {reason}").format(reason=e))
                return
            self.open_photo(data, _("pasted image"))
        elif mime.hasText() and (text := mime.text().strip()):
            url = QUrl(text)
            path = Path(url.toLocalFile()) if url.isLocalFile() else Path(text).expanduser()
            if path.is_file():
                self.open_photo(path)
            else:
                self.show_error(_("{text}: not a photo file").format(text=text[:200]))
        else:
            self.show_error(nothing)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt name
        mime = event.mimeData()
        if mime.hasImage() or any(u.isLocalFile() for u in mime.urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt name
        self._open_mime(event.mimeData(), _("Nothing to open in what was dropped."))
        event.acceptProposedAction()

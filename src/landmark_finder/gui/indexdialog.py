"""The "Build index from a gallery folder" dialog: what ``landmark-finder index build`` asks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from landmark_finder import defaults
from landmark_finder.backbones.base import available
from landmark_finder.gui.widgets import plain_text_labels
from landmark_finder.i18n import _

if TYPE_CHECKING:
    from landmark_finder.recognition.indexing import IndexConfig

DEFAULT_BACKBONE = defaults.BACKBONE


@dataclass(frozen=True)
class BuildRequest:
    gallery: Path
    catalog: Path | None
    out: Path
    backbone: str = DEFAULT_BACKBONE
    size: int = defaults.INPUT_SIZE
    #: few photos per landmark: crops on both sides and SSCD fused with the backbone
    #: (``index build --views crops --backbone <backbone>+sscd``; README, "Few reference photos")
    few_photos: bool = False

    def config(self) -> IndexConfig:
        """The ``IndexConfig`` this request builds."""
        from landmark_finder.backbones.sscd import with_sscd
        from landmark_finder.core.descriptors import Preprocessing
        from landmark_finder.recognition.indexing import IndexConfig

        if self.few_photos:
            return IndexConfig(
                with_sscd(self.backbone), Preprocessing(size=self.size, views="crops")
            )
        return IndexConfig(self.backbone, Preprocessing(size=self.size))


def check_request(req: BuildRequest) -> str | None:
    """Why the request cannot run, in one line, or None. Checked before any work starts."""
    if not req.gallery.is_dir():
        text = _("{path}: not a folder; choose a folder with one sub-folder per landmark")
        return text.format(path=req.gallery)
    if req.catalog is not None and not req.catalog.is_file():
        return _("{path}: no such catalog file").format(path=req.catalog)
    out = req.out
    if out.exists() and not out.is_dir():
        return _("{path}: exists and is not a folder").format(path=out)
    if out.is_dir() and not (out / "CURRENT").is_file() and any(out.iterdir()):
        # Never scatter index files into someone's folder of other things.
        text = _("{path}: folder is not empty and not an index; choose an empty or new folder")
        return text.format(path=out)
    if out.resolve() == req.gallery.resolve() or req.gallery.resolve() in out.resolve().parents:
        text = _(
            "{path}: the index cannot go inside the gallery folder (it would be indexed next time)"
        )
        return text.format(path=out)
    return None


class BuildIndexDialog(QDialog):
    """Asks for gallery, optional catalog, output folder, backbone and size."""

    def __init__(self, parent: QWidget | None = None, start_dir: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle(_("Build index from a gallery folder"))
        self.start_dir = start_dir
        self.gallery = QLineEdit()
        self.gallery.setPlaceholderText(_("folder with one sub-folder of photos per landmark"))
        self.catalog = QLineEdit()
        self.catalog.setPlaceholderText(_("optional: CSV with id,name,address,latitude,longitude"))
        self.out = QLineEdit()
        self.out.setPlaceholderText(_("new or empty folder (an existing index is replaced)"))
        self.backbone = QComboBox()

        self.backbone.addItems(available())
        if DEFAULT_BACKBONE in available():
            self.backbone.setCurrentText(DEFAULT_BACKBONE)
        self.size = QSpinBox()
        self.size.setRange(96, 1024)
        self.size.setSingleStep(32)
        self.size.setValue(defaults.INPUT_SIZE)
        self.size.setSuffix(" px")
        self.few_photos = QCheckBox(_("Few photos per landmark (1 to 10)"))
        self.few_photos.setToolTip(
            _("Crops of every photo and a second descriptor (SSCD): better with few photos, slower")
        )
        self.gallery.textChanged.connect(self._suggest_out)
        form = QFormLayout(self)
        form.addRow(_("Gallery folder"), self._with_browse(self.gallery, self._pick_gallery))
        form.addRow(_("Catalog CSV"), self._with_browse(self.catalog, self._pick_catalog))
        form.addRow(_("Index folder"), self._with_browse(self.out, self._pick_out))
        form.addRow(_("Backbone"), self.backbone)
        form.addRow(_("Photo size (long side)"), self.size)
        form.addRow("", self.few_photos)
        self.problem = QLabel("")
        self.problem.setObjectName("error")
        self.problem.setWordWrap(True)
        form.addRow(self.problem)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText(_("Build"))
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setText(_("Cancel"))
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.setMinimumWidth(560)
        plain_text_labels(self)

    def _with_browse(self, edit: QLineEdit, pick) -> QWidget:
        w = QWidget()
        row = QHBoxLayout(w)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        b = QPushButton(_("Browse…"))
        b.clicked.connect(pick)
        row.addWidget(b)
        return w

    def _pick_gallery(self) -> None:
        d = QFileDialog.getExistingDirectory(
            self, _("Gallery folder"), self.gallery.text() or self.start_dir
        )
        if d:
            self.gallery.setText(d)

    def _pick_catalog(self) -> None:
        f, _chosen_filter = QFileDialog.getOpenFileName(
            self,
            _("Catalog CSV"),
            self.catalog.text() or self.start_dir,
            _("CSV files (*.csv);;All files (*)"),
        )
        if f:
            self.catalog.setText(f)

    def _pick_out(self) -> None:
        d = QFileDialog.getExistingDirectory(
            self, _("Index folder"), self.out.text() or self.start_dir
        )
        if d:
            self.out.setText(d)

    def _suggest_out(self, text: str) -> None:
        if text.strip() and not self.out.isModified():
            g = Path(text.strip())
            self.out.setText(str(g.parent / f"{g.name}-index"))

    def request(self) -> BuildRequest | None:
        g, o, c = self.gallery.text().strip(), self.out.text().strip(), self.catalog.text().strip()
        if not g or not o:
            return None
        return BuildRequest(
            Path(g).expanduser(),
            Path(c).expanduser() if c else None,
            Path(o).expanduser(),
            self.backbone.currentText(),
            self.size.value(),
            self.few_photos.isChecked(),
        )

    def accept(self) -> None:
        req = self.request()
        problem = (
            _("Choose a gallery folder and an index folder.") if req is None else check_request(req)
        )
        if problem:
            self.problem.setText(problem)
            return
        super().accept()

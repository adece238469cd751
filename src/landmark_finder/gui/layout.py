"""The main window's widgets and actions, laid out once (a mixin of
:class:`~landmark_finder.gui.app.MainWindow`; slots and state live there)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QFont, QKeySequence
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QSplitter,
    QStyle,
    QToolBar,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)

from landmark_finder.gui.look import STYLE, caption, card
from landmark_finder.gui.mapview import MapPanel
from landmark_finder.gui.widgets import PhotoView
from landmark_finder.i18n import _, current_language, languages
from landmark_finder.i18n.export import language_name


class WindowLayout:
    """Builds the toolbar, the photo, answer, candidates and map panels, and the status bar."""

    def _build_ui(self) -> None:
        self.setStyleSheet(STYLE)
        style = self.style()
        self.open_action = QAction(
            style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton), _("Open photo…"), self
        )
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(self.choose_photo)
        self.paste_action = QAction(_("Paste photo"), self)
        self.paste_action.setShortcut(QKeySequence.StandardKey.Paste)
        self.paste_action.triggered.connect(self.paste)
        self.index_action = QAction(
            style.standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon), _("Open index…"), self
        )
        self.index_action.triggered.connect(self.choose_index)
        self.build_action = QAction(
            style.standardIcon(QStyle.StandardPixmap.SP_FileDialogNewFolder),
            _("Build index from gallery…"),
            self,
        )
        self.build_action.triggered.connect(self.choose_build)
        self.heatmap_action = QAction(_("Heatmap"), self)
        self.heatmap_action.setCheckable(True)
        self.heatmap_action.setToolTip(_("Show which parts of the photo the answer rests on"))
        self.heatmap_action.toggled.connect(self._heatmap_toggled)
        self.heatmap_action.setVisible(self.heatmap_fn is not None)
        quit_action = QAction(_("Quit"), self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)

        menu = self.menuBar()
        m = menu.addMenu(_("&File"))
        m.addActions([self.open_action, self.paste_action])
        m.addSeparator()
        m.addAction(quit_action)
        m = menu.addMenu(_("&Index"))
        m.addActions([self.index_action, self.build_action])
        if self.heatmap_fn is not None:
            menu.addMenu(_("&View")).addAction(self.heatmap_action)
        # Language: the system locale's at start; a choice here is remembered and applied at once.
        m = menu.addMenu(_("&Language"))
        group = QActionGroup(self)
        for code in languages():
            action = group.addAction(language_name(code))
            action.setCheckable(True)
            action.setChecked(code == current_language())
            action.setData(code)
            action.triggered.connect(lambda _checked, code=code: self.set_interface_language(code))
            m.addAction(action)

        tb = QToolBar(_("Main"))
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
            _("Drop a photo here, paste one (Ctrl+V)\nor click “Open photo…”"), QSize(320, 240)
        )
        self.photo_view.dashed = True
        self.photo_caption = QLabel("")
        self.photo_caption.setObjectName("muted")
        left, left_lay = card()
        left_lay.addWidget(self.photo_view, 1)
        left_lay.addWidget(self.photo_caption)

        # right: the answer
        answer, a = card()
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
        conf_row.addWidget(caption(_("Confidence")))
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
        ref_card, r = card()
        self.reference_caption = caption(_("Matched reference photo"))
        self.reference_view = PhotoView("", QSize(200, 150))
        self.reference_name = QLabel()
        self.reference_name.setObjectName("muted")
        self.reference_name.setWordWrap(True)
        r.addWidget(self.reference_caption)
        r.addWidget(self.reference_view, 1)
        r.addWidget(self.reference_name)
        map_card, mp = card()
        self.map_panel = MapPanel()
        mp.addWidget(caption(_("Where it is")))
        mp.addWidget(self.map_panel, 1)
        grid.addWidget(ref_card, 0, 0)
        grid.addWidget(map_card, 0, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)

        cand_card, c = card()
        self.candidates_caption = caption(_("Other candidates"))
        self.candidates = QTreeWidget()
        self.candidates.setColumnCount(2)
        self.candidates.setHeaderLabels([_("Landmark"), _("Similarity")])
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
        self.index_label = QLabel(_("No index"))
        self.index_label.setObjectName("muted")
        self.statusBar().addPermanentWidget(self.busy)
        self.statusBar().addPermanentWidget(self.index_label)

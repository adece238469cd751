"""How the desktop app looks: its style sheet, the font fallback for Hangul, card frames."""

from __future__ import annotations

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication, QFrame, QLabel, QVBoxLayout

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


def configure_fonts(app: QApplication) -> QFont:
    """Keep the platform UI font but fall back to a Hangul font, so Korean names never show
    as empty boxes (tofu) on systems whose default font lacks Hangul."""
    font = QFont(app.font())
    base = font.family()
    font.setFamilies([base, *[f for f in FALLBACK_FAMILIES if f != base]])
    app.setFont(font)
    return font


def card() -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("card")
    lay = QVBoxLayout(frame)
    lay.setContentsMargins(14, 12, 14, 12)
    lay.setSpacing(6)
    return frame, lay


def caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("caption")
    return label

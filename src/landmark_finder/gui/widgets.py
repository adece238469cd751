"""Small widgets and conversions the main window is made of."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from landmark_finder.i18n import _


def plain_text_labels(root: QWidget) -> None:
    """Every label under ``root`` shows its text as typed. Qt's default (AutoText) renders any
    text that looks like HTML as HTML, so a catalog name or a file name with tags in it would
    be formatted, linked or hidden instead of shown."""
    for label in root.findChildren(QLabel):
        label.setTextFormat(Qt.TextFormat.PlainText)


def plain_tooltip(text: str) -> str:
    """A tooltip that shows ``text`` literally (tooltips have no plain-text switch)."""
    import html

    return "<qt>" + html.escape(text).replace("\n", "<br>") + "</qt>"


def pil_to_qimage(img: Image.Image) -> QImage:
    """An RGB copy owned by Qt (the PIL buffer may be freed once this returns)."""
    rgb = img.convert("RGB")
    data = rgb.tobytes("raw", "RGB")
    return QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888).copy()


def qimage_to_png(image: QImage) -> bytes:
    """Encode a pasted/dropped QImage so it goes through ``load_image`` like any other photo."""
    buf = QByteArray()
    dev = QBuffer(buf)
    dev.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(dev, "PNG"):
        raise ValueError(_("the pasted image could not be encoded"))
    dev.close()
    return bytes(buf.data())


class PhotoView(QWidget):
    """A picture scaled to fit (aspect kept, never upscaled past 2×), or a hint text."""

    def __init__(
        self,
        placeholder: str = "",
        min_size: QSize = QSize(160, 120),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.placeholder = placeholder
        self._pixmap: QPixmap | None = None
        self.dashed = False  # a drop-zone look while empty
        #: outlines drawn over the picture: (4 points in pixels of a photo ``outline_size``
        #: large, label); the first is the best answer
        self.outlines: list[tuple[list[list[float]], str]] = []
        self.outline_size: tuple[int, int] = (1, 1)
        self.setMinimumSize(min_size)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_image(self, image: QImage | None) -> None:
        self._pixmap = None if image is None or image.isNull() else QPixmap.fromImage(image)
        self.update()

    def set_outlines(
        self, outlines: list[tuple[list[list[float]], str]], size: tuple[int, int]
    ) -> None:
        """Draw these polygons over the picture; ``size``: the photo their points are in."""
        self.outlines, self.outline_size = list(outlines), (max(1, size[0]), max(1, size[1]))
        self.update()

    def outline_points(self, i: int) -> list[QPointF]:
        """Outline ``i`` in widget pixels."""
        r = self.image_rect()
        sx, sy = r.width() / self.outline_size[0], r.height() / self.outline_size[1]
        return [QPointF(r.x() + x * sx, r.y() + y * sy) for x, y in self.outlines[i][0]]

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.update()

    def has_image(self) -> bool:
        return self._pixmap is not None

    def pixmap(self) -> QPixmap | None:
        return self._pixmap

    def image_rect(self) -> QRectF:
        """Where the picture is drawn, in widget pixels (empty when there is none)."""
        if self._pixmap is None:
            return QRectF()
        pw, ph = self._pixmap.width(), self._pixmap.height()
        s = min(self.width() / pw, self.height() / ph, 2.0)
        w, h = pw * s, ph * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt name
        p = QPainter(self)
        if self._pixmap is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawPixmap(self.image_rect(), self._pixmap, QRectF(self._pixmap.rect()))
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            for i, (_, label) in enumerate(self.outlines):
                pts = self.outline_points(i)
                p.setPen(QPen(QColor("#e61e1e" if i == 0 else "#ffe600"), 3))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawPolygon(QPolygonF(pts))
                at = QPointF(min(q.x() for q in pts) + 6, min(q.y() for q in pts) + 18)
                p.setPen(QColor("black"))
                p.drawText(at + QPointF(1, 1), label)
                p.setPen(QColor("white"))
                p.drawText(at, label)
        else:
            if self.dashed:
                p.setRenderHint(QPainter.RenderHint.Antialiasing)
                pen = QPen(QColor("#9aa7b4"), 2, Qt.PenStyle.DashLine)
                p.setPen(pen)
                p.drawRoundedRect(QRectF(self.rect()).adjusted(4, 4, -4, -4), 10, 10)
            p.setPen(QColor("#5b6470"))
            p.drawText(
                self.rect().adjusted(16, 16, -16, -16),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.placeholder,
            )
        p.end()

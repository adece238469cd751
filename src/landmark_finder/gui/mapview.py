"""The small map: a marker on a bundled world outline, drawn with QPainter.

No web view and no tiles: the desktop app works offline and without QtWebEngine (a 200 MB
dependency). The outline is Natural Earth 1:110m countries (``data/world-110m.json``, see
``data/README.md``) in an equirectangular projection centred on the marker, which at the
scale of a country is close enough to what a person expects from a map. "Open in browser"
hands the coordinates to OpenStreetMap for streets and satellite detail.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QPolygonF,
    QWheelEvent,
)
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from landmark_finder.i18n import _

OCEAN = QColor("#cfe3f3")
BEYOND = QColor("#e6e9ed")  # past the poles, when the whole world is shown
LAND = QColor("#f4f1e8")
BORDER = QColor("#a9a294")
GRID = QColor(255, 255, 255, 150)
MARKER = QColor("#d1342f")

#: Longitude span shown at first (degrees): a country and its neighbours.
DEFAULT_SPAN = 36.0
MIN_SPAN, MAX_SPAN = 2.0, 360.0


@dataclass(frozen=True)
class Country:
    name: str
    bbox: tuple[float, float, float, float]  # lon0, lat0, lon1, lat1, to skip what is off view
    rings: tuple[tuple[float, ...], ...]  # flat lon, lat, lon, lat, ...; holes drawn odd-even


@lru_cache(maxsize=1)
def world_outline() -> tuple[Country, ...]:
    """The bundled countries, parsed once per process (≈10,000 points, a few ms)."""
    text = resources.files(__package__).joinpath("data", "world-110m.json").read_text("utf-8")
    out = []
    for c in json.loads(text)["countries"]:
        rings = tuple(tuple(r) for poly in c["polygons"] for r in poly if len(r) >= 6)
        if not rings:
            continue
        xs = [v for r in rings for v in r[0::2]]
        ys = [v for r in rings for v in r[1::2]]
        out.append(Country(c.get("name", ""), (min(xs), min(ys), max(xs), max(ys)), rings))
    return tuple(out)


@lru_cache(maxsize=1)
def world_paths() -> tuple[tuple[tuple[float, float, float, float], QPainterPath], ...]:
    """One path per country in degrees (lon, lat), built once; painting only transforms them."""
    out = []
    for c in world_outline():
        path = QPainterPath()
        path.setFillRule(Qt.FillRule.OddEvenFill)
        for r in c.rings:
            path.addPolygon(QPolygonF([QPointF(r[i], r[i + 1]) for i in range(0, len(r), 2)]))
            path.closeSubpath()
        out.append((c.bbox, path))
    return tuple(out)


def osm_url(latitude: float, longitude: float, zoom: int = 16) -> str:
    """OpenStreetMap centred on the point, with a marker on it."""
    lat, lon = f"{latitude:.5f}", f"{longitude:.5f}"
    return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map={zoom}/{lat}/{lon}"


class MapView(QWidget):
    """World outline with one marker. ``project`` maps (lat, lon) to widget pixels."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.location: tuple[float, float] | None = None
        #: further landmarks of the photo, one marker each (``location`` is the first)
        self.others: list[tuple[float, float]] = []
        self.span = DEFAULT_SPAN
        self.center = (20.0, 0.0)  # lat, lon when no marker: the inhabited world
        self._bases: dict[tuple, QPixmap] = {}
        self.setMinimumSize(180, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip(_("Scroll to zoom"))

    def sizeHint(self) -> QSize:
        return QSize(260, 170)

    def set_location(self, latitude: float | None, longitude: float | None) -> None:
        self.others = []
        if latitude is None or longitude is None:
            self.location = None
            self.span = MAX_SPAN
            self.center = (20.0, 0.0)
        else:
            self.location = (float(latitude), float(longitude))
            self.center = self.location
            self.span = DEFAULT_SPAN
        self.update()

    # -- projection -------------------------------------------------------------------------

    def _scale(self) -> float:
        """Pixels per degree: ``span`` degrees of longitude fill the width."""
        return max(self.width(), 1) / self.span

    def _view_center(self) -> tuple[float, float]:
        """The centre latitude, moved so the view does not run past a pole."""
        lat, lon = self.center
        half = self.height() / 2 / self._scale()
        if 2 * half >= 180:
            return 0.0, lon
        return min(max(lat, -90 + half), 90 - half), lon

    def project(self, latitude: float, longitude: float) -> QPointF:
        clat, clon = self._view_center()
        s = self._scale()
        dlon = (longitude - clon + 180.0) % 360.0 - 180.0  # shortest way round
        return QPointF(self.width() / 2 + dlon * s, self.height() / 2 - (latitude - clat) * s)

    def marker_point(self) -> QPointF | None:
        return None if self.location is None else self.project(*self.location)

    def set_others(self, points: list[tuple[float, float]]) -> None:
        """One more marker per point; the view widens to show them with ``location``."""
        self.others = [(float(a), float(b)) for a, b in points]
        if self.location is not None and self.others:
            lats = [self.location[0], *(p[0] for p in self.others)]
            lons = [self.location[1], *(p[1] for p in self.others)]
            self.center = ((max(lats) + min(lats)) / 2, (max(lons) + min(lons)) / 2)
            extent = max(max(lons) - min(lons), (max(lats) - min(lats)) * 1.6)
            self.span = min(max(DEFAULT_SPAN, extent * 1.6), MAX_SPAN)
        self.update()

    def marker_points(self) -> list[QPointF]:
        """Every marker drawn, in widget pixels (the answer's first)."""
        pts = [] if self.location is None else [self.location]
        return [self.project(*p) for p in pts + self.others]

    # -- painting ---------------------------------------------------------------------------

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt name
        # The outline is drawn once per view and size; repaints blit it and add the marker.
        key = (
            self.width(),
            self.height(),
            self.devicePixelRatioF(),
            self._view_center(),
            self.span,
        )
        base = self._bases.get(key)
        if base is None:
            ratio = self.devicePixelRatioF()
            base = QPixmap(int(self.width() * ratio), int(self.height() * ratio))
            base.setDevicePixelRatio(ratio)
            bp = QPainter(base)
            self._draw_base(bp)
            bp.end()
            if len(self._bases) >= 4:  # the world view and a few recent places
                self._bases.pop(next(iter(self._bases)))
            self._bases[key] = base
        p = QPainter(self)
        p.drawPixmap(0, 0, base)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self.location is not None:
            for at in reversed(self.marker_points()):
                self._draw_marker(p, at)
        else:
            p.setPen(QColor("#5b6470"))
            p.drawText(
                self.rect().adjusted(8, 8, -8, -8),
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
                _("no location"),
            )
        p.end()

    def _draw_base(self, p: QPainter) -> None:
        """Sea, graticule, countries and frame for the current view."""
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), BEYOND)
        top, bottom = self.project(90, 0).y(), self.project(-90, 0).y()
        p.fillRect(QRectF(0, top, self.width(), bottom - top), OCEAN)
        clat, clon = self._view_center()
        s = self._scale()
        w, h = self.width(), self.height()
        half_lon, half_lat = w / 2 / s, h / 2 / s
        self._draw_grid(p, clat, clon, half_lon, half_lat)
        pen = QPen(BORDER, 0.8)
        pen.setCosmetic(True)  # width in pixels, whatever the degree-to-pixel transform
        # Draw the world up to three times (shifted by 360°) so a view across the antimeridian
        # or wider than the world has no gap.
        for shift in (-360.0, 0.0, 360.0):
            x0, x1 = clon - half_lon - shift, clon + half_lon - shift
            y0, y1 = clat - half_lat, clat + half_lat
            p.save()
            p.translate(w / 2, h / 2)
            p.scale(s, -s)
            p.translate(shift - clon, -clat)
            p.setPen(pen)
            p.setBrush(LAND)
            for b, path in world_paths():
                if not (b[2] < x0 or b[0] > x1 or b[3] < y0 or b[1] > y1):
                    p.drawPath(path)
            p.restore()
        p.setPen(QPen(QColor("#9aa7b4"), 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(QRectF(0.5, 0.5, w - 1, h - 1))

    def _draw_grid(self, p: QPainter, clat: float, clon: float, hl: float, hb: float) -> None:
        step = next(g for g in (1, 2, 5, 10, 15, 30, 60) if g * 4 >= 2 * hl) if 2 * hl < 240 else 30
        p.setPen(QPen(GRID, 1))
        top = max(0.0, self.project(90, clon).y())
        bottom = min(float(self.height()), self.project(-90, clon).y())
        lon = math.floor((clon - hl) / step) * step
        while lon <= clon + hl:
            x = self.project(0, lon).x()
            p.drawLine(QPointF(x, top), QPointF(x, bottom))
            lon += step
        lat = math.floor(max(-90, clat - hb) / step) * step
        while lat <= min(90, clat + hb):
            y = self.project(lat, clon).y()
            p.drawLine(QPointF(0, y), QPointF(self.width(), y))
            lat += step

    @staticmethod
    def _draw_marker(p: QPainter, at: QPointF) -> None:
        """A map pin whose tip is exactly on the point."""
        r = 7.0
        head = QPointF(at.x(), at.y() - 2.6 * r)
        pin = QPainterPath()
        pin.moveTo(at)
        pin.cubicTo(
            QPointF(at.x() - 0.4 * r, at.y() - 1.2 * r),
            QPointF(head.x() - r, head.y() + 0.9 * r),
            QPointF(head.x() - r, head.y()),
        )
        pin.arcTo(QRectF(head.x() - r, head.y() - r, 2 * r, 2 * r), 180, -180)
        pin.cubicTo(
            QPointF(head.x() + r, head.y() + 0.9 * r),
            QPointF(at.x() + 0.4 * r, at.y() - 1.2 * r),
            at,
        )
        p.setPen(QPen(QColor("#7d1b17"), 1.2))
        p.setBrush(MARKER)
        p.drawPath(pin)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("white"))
        p.drawEllipse(head, r * 0.38, r * 0.38)
        p.setBrush(MARKER)
        p.drawEllipse(at, 2.0, 2.0)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt name
        steps = event.angleDelta().y() / 120.0
        self.span = min(max(self.span * (0.8**steps), MIN_SPAN), MAX_SPAN)
        self.update()
        event.accept()


class MapPanel(QWidget):
    """The map, the coordinates and the "Open in browser" button."""

    open_requested = Signal(str)  # the URL handed to the desktop (signal so tests can watch it)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = MapView(self)
        self.coords = QLabel("")
        self.coords.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.coords.setObjectName("muted")
        self.browser = QPushButton(_("Open in browser"))
        self.browser.setToolTip(_("Show this place on OpenStreetMap"))
        self.browser.clicked.connect(self._open)
        self.open_url = QDesktopServices.openUrl  # replaceable, so tests open no browser
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.coords, 1)
        row.addWidget(self.browser)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(self.view, 1)
        lay.addLayout(row)
        self.set_location(None, None)

    def set_location(self, latitude: float | None, longitude: float | None) -> None:
        self.view.set_location(latitude, longitude)
        ok = latitude is not None and longitude is not None
        self.browser.setEnabled(ok)
        self.coords.setText(_format_coords(latitude, longitude) if ok else "")

    def url(self) -> str | None:
        loc = self.view.location
        return None if loc is None else osm_url(*loc)

    def _open(self) -> None:
        url = self.url()
        if url:
            self.open_requested.emit(url)
            self.open_url(QUrl(url))


def _format_coords(lat: float | None, lon: float | None) -> str:
    assert lat is not None and lon is not None
    north = (_("{deg}° N") if lat >= 0 else _("{deg}° S")).format(deg=f"{abs(lat):.4f}")
    east = (_("{deg}° E") if lon >= 0 else _("{deg}° W")).format(deg=f"{abs(lon):.4f}")
    return f"{north}, {east}"

"""A PNG map of a catalog's landmarks: markers over the bundled world outline.

An enriched catalog is checked by eye before it is trusted: a marker in the sea or in another
city is a wrong match that no table shows as quickly. The outline is the Natural Earth 1:110m
polygon file the desktop app ships (read as a data file, without importing the Qt app), so
the map needs no tiles and no network. The view fits the landmarks with a margin, and Hangul
labels use Noto Sans CJK when it is installed.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

from matplotlib import font_manager
from matplotlib.patches import Polygon

from landmark_finder.core.catalog import Catalog
from landmark_finder.core.figures import new_figure, save_figure

MAX_LABELS = 40  # past this the labels hide the map; markers only
_CJK_FONTS = ("Noto Sans CJK KR", "Noto Sans CJK JP", "Noto Sans CJK SC")


def _outline() -> list[list[float]]:
    data = resources.files("landmark_finder").joinpath("gui", "data", "world-110m.json")
    rings = []
    for country in json.loads(data.read_text("utf-8"))["countries"]:
        for polygon in country["polygons"]:
            rings.extend(r for r in polygon[:1] if len(r) >= 6)  # outer rings only
    return rings


def _font_family() -> list[str]:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return [f for f in _CJK_FONTS if f in installed][:1] + ["DejaVu Sans"]


def draw_catalog_map(catalog: Catalog, path: str | Path, title: str = "") -> tuple[Path, int]:
    """Write the map PNG; returns (path, landmarks drawn). Rows without coordinates are left
    out (and counted in the title)."""
    placed = [lm for lm in catalog if lm.latitude is not None and lm.longitude is not None]
    if not placed:
        raise ValueError("no landmark in the catalog has coordinates: nothing to draw")
    lats = [lm.latitude for lm in placed]
    lons = [lm.longitude for lm in placed]
    pad = max(0.02, 0.15 * max(max(lats) - min(lats), max(lons) - min(lons)))
    south, north = max(-90.0, min(lats) - pad), min(90.0, max(lats) + pad)
    west, east = min(lons) - pad, max(lons) + pad
    fig = new_figure(9, 7)
    ax = fig.add_subplot()
    ax.set_facecolor("#cfe3f3")
    for ring in _outline():
        xy = list(zip(ring[0::2], ring[1::2], strict=True))
        ax.add_patch(Polygon(xy, closed=True, fc="#f4f1e8", ec="#a9a294", lw=0.6))
    ax.scatter(lons, lats, s=28, c="#d1342f", edgecolors="white", linewidths=0.8, zorder=3)
    family = _font_family()
    if len(placed) <= MAX_LABELS:
        for lm in placed:
            ax.annotate(
                lm.name,
                (lm.longitude, lm.latitude),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=8,
                family=family,
                zorder=4,
            )
    ax.set_xlim(west, east)
    ax.set_ylim(south, north)
    ax.set_aspect(
        1 / max(0.05, math.cos(math.radians((south + north) / 2)))
    )  # equirectangular, true at mid
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    missing = len(catalog) - len(placed)
    heading = title or "Catalog"
    heading += f": {len(placed)} landmarks" + (
        f", {missing} without coordinates" if missing else ""
    )
    ax.set_title(heading, family=family)
    return save_figure(fig, path), len(placed)


__all__ = ["draw_catalog_map"]

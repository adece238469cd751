"""Matplotlib for the explanation pictures: headless, thread-safe, written atomically as PNG.

Figures are made with the object-oriented API (``matplotlib.figure.Figure`` rendered by the Agg
canvas), never through pyplot: no global backend or figure registry, so pictures render on
servers, in worker threads and in tests without a display, and never touch the desktop app's
own event loop.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from landmark_finder.core.atomic import write_bytes_atomic

__all__ = ["Figure", "new_figure", "png_bytes", "save_figure"]


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` as PNG (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    write_bytes_atomic(path, png_bytes(fig, dpi))
    return path

"""Heatmaps for recent uploads (drawn by :func:`landmark_finder.explain.heatmap`).

A heatmap costs about as much as a recognition, and most API callers never look at it, so
``/api/recognize`` only remembers the uploaded bytes under a random key (no second decode per
recognition, and a few hundred kB instead of a decoded picture); the photo is decoded and the
overlay PNG rendered on the first GET of its URL and kept for a few minutes. Nothing is written
to disk: uploads are private and the store is bounded in size and time.
"""

from __future__ import annotations

import io
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

#: heatmap(recognizer, image, landmark_id) -> object with .overlay(image) -> PIL.Image
HeatmapFn = Callable[[Any, Image.Image, str], Any]
#: decode(upload bytes, display name) -> the RGB photo the overlay is drawn on
DecodeFn = Callable[[bytes, str], Image.Image]


@dataclass
class _Entry:
    recognizer: Any
    data: bytes | None
    name: str
    landmark_id: str
    expires: float
    png: bytes | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class HeatmapStore:
    """Bounded, expiring map: random key -> (upload, landmark) -> overlay PNG rendered once."""

    def __init__(
        self, heatmap: HeatmapFn, decode: DecodeFn, ttl_s: float = 600.0, max_items: int = 16
    ) -> None:
        self.heatmap, self.decode, self.ttl_s, self.max_items = heatmap, decode, ttl_s, max_items
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, recognizer: Any, data: bytes, name: str, landmark_id: str) -> str:
        key = secrets.token_urlsafe(16)
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            self._items[key] = _Entry(recognizer, data, name, landmark_id, now + self.ttl_s)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return key

    def png(self, key: str) -> bytes | None:
        """The overlay PNG for ``key``; None when unknown or expired."""
        with self._lock:
            self._expire(time.monotonic())
            entry = self._items.get(key)
        if entry is None:
            return None
        with entry.lock:  # concurrent first GETs render once
            if entry.png is None:
                image = self.decode(entry.data, entry.name)
                overlay = self.heatmap(entry.recognizer, image, entry.landmark_id).overlay(image)
                buf = io.BytesIO()
                overlay.save(buf, "PNG", optimize=False)
                entry.png = buf.getvalue()
                entry.recognizer = entry.data = None  # the PNG is all that is needed from now on
        return entry.png

    def _expire(self, now: float) -> None:
        for key in [k for k, e in self._items.items() if e.expires <= now]:
            del self._items[key]

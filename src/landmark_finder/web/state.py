"""The recognizer a server answers with, swapped whole when an admin changes the index.

Requests take one ``Served`` snapshot and use it throughout, so a reload in the middle of a
request never mixes two index versions (row numbers, counts and recognizer always agree).
Writes are serialized by one lock: the index directory has a single writer at a time (the
index's own file lock also serializes the server with `landmark-finder index add` run beside it).
Changes made by another process are picked up: at most every ``POLL_S`` seconds a request checks
which version the index's CURRENT file names and, when it moved, a background thread opens the
new version while requests keep being answered from the old one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from landmark_finder.core.catalog import Landmark
from landmark_finder.recognition.index import Index
from landmark_finder.recognition.recognizer import Recognizer, extractor_for
from landmark_finder.web.schemas import LandmarkOut

log = logging.getLogger(__name__)
#: How often requests check whether another process published a new index version.
POLL_S = 1.0


@dataclass(frozen=True)
class Served:
    recognizer: Recognizer
    photo_counts: Counter
    rows_by_path: dict[str, int]  # reference photo path -> its row in the index

    @classmethod
    def of(cls, recognizer: Recognizer) -> Served:
        records = recognizer.index.records
        return cls(
            recognizer,
            Counter(r.landmark_id for r in records),
            {r.path: i for i, r in enumerate(records)},
        )

    @property
    def index(self) -> Index:
        return self.recognizer.index

    def landmark_out(self, lm: Landmark) -> LandmarkOut:
        return LandmarkOut(**lm.to_dict(), photo_count=self.photo_counts.get(lm.id, 0))


class IndexHolder:
    def __init__(
        self, recognizer: Recognizer, index_path: Path | None, threads: int | None = None
    ) -> None:
        self._served = Served.of(recognizer)
        self.index_path = index_path
        self.threads = threads  # network threads of an extractor made on reload
        self.write_lock = threading.Lock()
        self._checked = time.monotonic()
        self._reloading = threading.Lock()

    @property
    def current(self) -> Served:
        if self.index_path is not None and time.monotonic() - self._checked > POLL_S:
            self._checked = time.monotonic()
            self._maybe_reload()
        return self._served  # one attribute read: atomic, no lock needed

    def _maybe_reload(self) -> None:
        """Open a version published by another process, in the background."""
        from landmark_finder.recognition.store import current_name

        try:
            name = current_name(self.index_path)
        except Exception:  # the index folder vanished or is being replaced: keep serving
            return
        if name == self._served.index.version or not self._reloading.acquire(blocking=False):
            return

        def run() -> None:
            try:
                with self.write_lock:
                    if current_name(self.index_path) != self._served.index.version:
                        self.reload()
            except Exception as e:  # keep answering from the version we have
                log.warning("could not open the new index version: %s", e)
            finally:
                self._reloading.release()

        threading.Thread(target=run, name="index-reload", daemon=True).start()

    def reload(self) -> Served:
        """Reopen the index from disk and swap it in; the extractor is reused when compatible
        (it is the expensive part and the model does not change when photos do)."""
        assert self.index_path is not None
        index = Index.open(self.index_path)
        old = self._served.recognizer
        same_model = (index.backbone, index.weights_hash, index.preprocessing) == (
            old.index.backbone,
            old.index.weights_hash,
            old.index.preprocessing,
        )
        self._served = Served.of(
            Recognizer(
                index, old.extractor if same_model else extractor_for(index, threads=self.threads)
            )
        )
        return self._served

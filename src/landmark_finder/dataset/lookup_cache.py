"""On-disk cache of web-service answers, so that a re-run of ``catalog enrich`` asks nothing twice.

Wikidata and OpenStreetMap ask their users not to repeat identical queries; a catalog is
usually enriched, reviewed, fixed and enriched again, and only the rows that changed should
cost a request. The cache sits *outside* the rate limiters: an answer served from it neither
sends a request nor waits for a request slot, so a fully cached re-run of 392 rows takes
seconds instead of the ~15 minutes the 1-request-per-second rule costs.

SQLite (standard library) rather than a folder of JSON files: one file, atomic commits and
its own locking, so an interrupted run or two runs at once cannot leave a half-written entry.
Only successful answers are stored (an empty result is an answer; an error is not).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any


def default_cache_path() -> Path:
    """``~/.cache/landmark-finder/lookups.sqlite`` (``LANDMARK_FINDER_CACHE`` moves the folder)."""
    base = os.environ.get("LANDMARK_FINDER_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "landmark-finder"
    )
    return Path(base) / "lookups.sqlite"


def cache_key(service: str, params: dict[str, Any]) -> str:
    """A stable key: the service name plus its parameters in sorted order."""
    return f"{service} {json.dumps(params, sort_keys=True, ensure_ascii=False)}"


class LookupCache:
    """Key -> JSON value, persisted in one SQLite file; ``hits``/``misses`` count this run."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS answers "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL, saved REAL NOT NULL)"
            )
        self.hits = self.misses = 0

    def get(self, key: str) -> Any | None:
        row = self._db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        with self._db:  # one transaction: committed whole or not at all
            self._db.execute(
                "INSERT OR REPLACE INTO answers (key, value, saved) VALUES (?, ?, ?)",
                (key, json.dumps(value, ensure_ascii=False), time.time()),
            )

    def close(self) -> None:
        self._db.close()


class NoCache:
    """Stands in for LookupCache when caching is switched off (``--no-cache``)."""

    hits = misses = 0

    def get(self, key: str) -> None:
        self.misses += 1
        return None

    def put(self, key: str, value: Any) -> None:
        pass

    def close(self) -> None:
        pass

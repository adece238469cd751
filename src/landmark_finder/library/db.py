"""The resumable record of a tagging run: one SQLite row per photo.

Rows are keyed by path and carry the file's size, mtime and content hash, so a re-run only
handles new or changed photos, and a photo that was merely moved or touched is recognized by
its hash instead of being described again. Each answer is committed as soon as its metadata is
written (WAL journal): a run killed with ``kill -9`` loses at most the photos in flight, never
the database. One run at a time holds the database's lock file.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from landmark_finder.errors import LandmarkFinderError

#: Default database file, in the first library folder (hidden, so scans skip it).
DB_NAME = ".landmark-finder-tags.sqlite"
_SCHEMA_VERSION = "1"


class TagDBError(LandmarkFinderError):
    """The database cannot be used (locked by another run, not ours, unreadable)."""


@dataclass
class PhotoRecord:
    """What was decided and written for one photo."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    status: str  # "recognized" | "unknown" | "error"
    landmark_id: str | None = None
    landmark_name: str | None = None
    latitude: float | None = None  # the landmark's position
    longitude: float | None = None
    confidence: float = 0.0
    verified: bool = False
    gps_latitude: float | None = None  # the photo's own EXIF GPS tag, as found
    gps_longitude: float | None = None
    taken: str | None = None  # EXIF DateTimeOriginal, ISO 8601
    distance_km: float | None = None  # photo's tag -> landmark
    error: str | None = None
    written: str = ""  # the sidecar path, "file", or "" (nothing written)
    tagged_at: str = ""

    @property
    def done(self) -> bool:
        return self.status in ("recognized", "unknown", "error")


_COLUMNS = [f.name for f in fields(PhotoRecord)]
_TYPES = {"size": "INTEGER", "mtime_ns": "INTEGER", "verified": "INTEGER"}


class TagDB:
    """Open (create) the database at ``path`` and hold its lock until ``close``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path.with_name(self.path.name + ".lock"), "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise TagDBError(f"{self.path}: another tagging run is using this database") from None
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            cols = ", ".join(
                f"{c} {_TYPES.get(c, 'REAL' if c in _REALS else 'TEXT')}"
                + (" PRIMARY KEY" if c == "path" else "")
                for c in _COLUMNS
            )
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS photos ({cols})")
            self.conn.execute("CREATE INDEX IF NOT EXISTS photos_sha ON photos(sha256)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            version = self.get_meta("schema")
            if version is None:
                self.set_meta("schema", _SCHEMA_VERSION)
            elif version != _SCHEMA_VERSION:
                raise TagDBError(
                    f"{self.path}: database schema {version}, expected {_SCHEMA_VERSION}"
                )
        except sqlite3.DatabaseError as e:
            self.close()
            raise TagDBError(f"{self.path}: not a usable tag database ({e})") from None
        except TagDBError:
            self.close()
            raise

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()
            self.conn = None
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self) -> TagDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- meta ------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- photos ----------------------------------------------------------------------------

    def get(self, path: str) -> PhotoRecord | None:
        row = self.conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM photos WHERE path=?", (path,)
        ).fetchone()
        return None if row is None else _record(row)

    def by_hash(self, sha256: str) -> PhotoRecord | None:
        """A finished record of a photo with these exact bytes (moved, copied or touched)."""
        row = self.conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM photos WHERE sha256=? AND status!='error' LIMIT 1",
            (sha256,),
        ).fetchone()
        return None if row is None else _record(row)

    def put(self, rec: PhotoRecord) -> None:
        """Insert or replace one photo's record and commit it (durable on return)."""
        d = asdict(rec)
        d["verified"] = int(rec.verified)
        self.conn.execute(
            f"INSERT OR REPLACE INTO photos ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_COLUMNS))})",
            [d[c] for c in _COLUMNS],
        )

    def delete(self, path: str) -> None:
        self.conn.execute("DELETE FROM photos WHERE path=?", (path,))

    def all(self) -> list[PhotoRecord]:
        rows = self.conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM photos ORDER BY path")
        return [_record(r) for r in rows]

    def check(self) -> bool:
        """SQLite's own integrity check (used by tests after a killed run)."""
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


_REALS = {"latitude", "longitude", "confidence", "gps_latitude", "gps_longitude", "distance_km"}


def _record(row: tuple) -> PhotoRecord:
    d = dict(zip(_COLUMNS, row, strict=True))
    d["verified"] = bool(d["verified"])
    return PhotoRecord(**d)

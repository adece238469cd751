"""Atomic writes and CSV manifests shared by the dataset commands.

Every file the dataset tools write (manifests, sidecars, downloaded or augmented photos) goes
through a temp file in the same folder + fsync + ``os.replace``: an interrupted run leaves
either the old file or the new one, never half of one, so re-running is always safe.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from landmark_finder.core.atomic import write_bytes_atomic

__all__ = [
    "append_csv_atomic",
    "read_csv",
    "write_bytes_atomic",
    "write_csv_atomic",
    "write_json_atomic",
]


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def write_csv_atomic(
    path: str | os.PathLike, fieldnames: Sequence[str], rows: Iterable[Mapping[str, object]]
) -> None:
    """A UTF-8 CSV with a header row; values are written with ``str()`` ('' for None)."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(fieldnames), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: "" if row.get(k) is None else row.get(k) for k in fieldnames})
    write_bytes_atomic(path, buf.getvalue().encode("utf-8"))


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a headed CSV as dicts; a missing file is an empty manifest."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [dict(r) for r in csv.DictReader(f)]


def append_csv_atomic(
    path: str | os.PathLike, fieldnames: Sequence[str], rows: Iterable[Mapping[str, object]]
) -> None:
    """Rewrite ``path`` with its old rows followed by ``rows`` (atomic, unlike a plain append)."""
    old = read_csv(path)
    write_csv_atomic(path, fieldnames, [*old, *rows])

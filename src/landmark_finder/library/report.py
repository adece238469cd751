"""One row per photo, as CSV, JSON lines or GeoJSON: what was found and whether its GPS agrees.

``gps_mismatch`` is true when the photo carries a GPS tag more than ``max_km`` from the landmark
its pixels show: the wrongly tagged photos a person wants to fix first.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from landmark_finder.core.atomic import write_text_atomic
from landmark_finder.library.db import PhotoRecord

COLUMNS = [
    "path",
    "status",
    "landmark_id",
    "landmark_name",
    "confidence",
    "gps_latitude",
    "gps_longitude",
    "taken",
    "landmark_latitude",
    "landmark_longitude",
    "distance_km",
    "gps_mismatch",
    "written",
    "error",
]
FORMATS = (".csv", ".jsonl", ".geojson")


def is_mismatch(rec: PhotoRecord, max_km: float) -> bool:
    return rec.distance_km is not None and rec.distance_km > max_km


def row(rec: PhotoRecord, max_km: float) -> dict:
    return {
        "path": rec.path,
        "status": rec.status,
        "landmark_id": rec.landmark_id,
        "landmark_name": rec.landmark_name,
        "confidence": rec.confidence,
        "gps_latitude": rec.gps_latitude,
        "gps_longitude": rec.gps_longitude,
        "taken": rec.taken,
        "landmark_latitude": rec.latitude,
        "landmark_longitude": rec.longitude,
        "distance_km": rec.distance_km,
        "gps_mismatch": is_mismatch(rec, max_km),
        "written": rec.written or None,
        "error": rec.error,
    }


def _feature(r: dict) -> dict:
    """A photo at its own GPS position, else at its landmark's; null geometry when neither."""
    lat, lon = r["gps_latitude"], r["gps_longitude"]
    if lat is None:
        lat, lon = r["landmark_latitude"], r["landmark_longitude"]
    geom = None if lat is None else {"type": "Point", "coordinates": [lon, lat]}
    return {"type": "Feature", "geometry": geom, "properties": r}


def render(records: list[PhotoRecord], fmt: str, max_km: float) -> str:
    rows = [row(r, max_km) for r in records]
    if fmt == ".jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if fmt == ".geojson":
        fc = {"type": "FeatureCollection", "features": [_feature(r) for r in rows]}
        return json.dumps(fc, ensure_ascii=False, indent=1)
    if fmt == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
        return buf.getvalue()
    raise ValueError(f"report format must be one of {', '.join(FORMATS)}, not {fmt or 'none'!r}")


def write_report(records: list[PhotoRecord], path: Path, max_km: float) -> Path:
    """Write the report (format from the file's extension) atomically."""
    path = Path(path)
    write_text_atomic(path, render(records, path.suffix.lower(), max_km))
    return path

"""Where a photo says it was taken (EXIF GPS) and how far that is from the recognized landmark.

This is the reason the project exists: GPS tags are often wrong (indoor fixes, cameras that
keep the last fix, edited photos), so every shell shows the tagged point next to the landmark
the pixels show, with the distance between them. Broken or partial GPS tags are common in the
wild, so reading them never raises: anything unusable is simply "no GPS".
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image

from landmark_finder.core.images import ImageLoadError, open_header

#: Mean Earth radius (IUGG), km: the usual sphere for great-circle distances (error < 0.5 %).
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class GeoPoint:
    latitude: float
    longitude: float

    def to_dict(self) -> dict[str, float]:
        return {"latitude": round(self.latitude, 6), "longitude": round(self.longitude, 6)}


def distance_km(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle (haversine) distance in kilometres."""
    p1, p2 = math.radians(a.latitude), math.radians(b.latitude)
    dp, dl = p2 - p1, math.radians(b.longitude - a.longitude)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _degrees(dms: Any) -> float | None:
    """EXIF (degrees, minutes, seconds) rationals -> decimal degrees; None when malformed."""
    try:
        parts = [float(x) for x in (dms if isinstance(dms, (tuple, list)) else (dms,))]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not 1 <= len(parts) <= 3 or not all(math.isfinite(p) and p >= 0 for p in parts):
        return None
    return sum(p / 60**i for i, p in enumerate(parts))


def _ref(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value or "").strip("\x00 ").upper()[:1]


def gps_from_exif(exif: Image.Exif) -> GeoPoint | None:
    """The GPS position in an EXIF block, or None when absent, partial or out of range.

    (0, 0) is refused: it is what many devices write when they had no fix.
    """
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # malformed IFD offsets and the like
        return None
    lat, lon = (
        _degrees(gps.get(ExifTags.GPS.GPSLatitude)),
        _degrees(gps.get(ExifTags.GPS.GPSLongitude)),
    )
    if lat is None or lon is None:
        return None
    lat_ref, lon_ref = (
        _ref(gps.get(ExifTags.GPS.GPSLatitudeRef)),
        _ref(gps.get(ExifTags.GPS.GPSLongitudeRef)),
    )
    if lat_ref not in ("N", "S", "") or lon_ref not in ("E", "W", ""):
        return None
    lat, lon = (-lat if lat_ref == "S" else lat), (-lon if lon_ref == "W" else lon)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return GeoPoint(lat, lon)


def exif_gps(source: str | os.PathLike | bytes) -> GeoPoint | None:
    """GPS position tagged in a photo (file path or bytes); None if it has none or is unreadable.

    Reads the header only (no pixel decoding), through the same restricted set of decoders as
    ``images.load_image``.
    """
    try:
        with warnings.catch_warnings():  # Pillow's "Corrupt EXIF data": same answer, None
            warnings.simplefilter("ignore")
            with open_header(source if isinstance(source, bytes) else Path(source)) as im:
                return gps_from_exif(im.getexif())
    except (ImageLoadError, OSError, ValueError, SyntaxError):
        return None


__all__ = ["EARTH_RADIUS_KM", "GeoPoint", "distance_km", "exif_gps", "gps_from_exif"]

"""Writing the answer where photo tools look for it: XMP sidecars or the photo's own XMP.

All reading and writing goes through exiftool (via pyexiftool, one long-running exiftool
process): it knows every format's metadata layout (JPEG, HEIC, PNG, TIFF, WebP, RAW), rewrites
only metadata (compressed pixel data are copied byte for byte), and replaces a file only after
the new one was written completely (temp file + rename), so a failed write leaves the original.

What we write is recorded in our own XMP namespace (``landmarkfinder:``: the keyword, the
hierarchical keyword and the location name we added, the GPS we replaced), so a re-run replaces
only our previous values and ``tag clear`` removes exactly them: keywords, locations and GPS a
person or another tool wrote survive both.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from landmark_finder.core.atomic import fsync_dir, write_text_atomic
from landmark_finder.errors import LandmarkFinderError

CONFIG = Path(__file__).with_name("exiftool.config")
NS = "XMP-landmarkfinder"
TAGGER = "landmark-finder"
#: Sidecar naming: darktable and digiKam use ``photo.jpg.xmp``; Lightroom uses ``photo.xmp``.
SIDECAR_STYLES = ("darktable", "lightroom")
_EMPTY_XMP = (
    "<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>\n"
    "<x:xmpmeta xmlns:x='adobe:ns:meta/'>\n"
    "<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\n"
    "</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end='w'?>\n"
)
_LISTS = ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-iptcExt:LocationShown")


class MetadataError(LandmarkFinderError):
    """exiftool is missing or could not write a file; str() is one line."""


@dataclass(frozen=True)
class LandmarkTag:
    """What is written for one recognized photo."""

    landmark_id: str
    name: str
    confidence: float
    country: str = ""
    city: str = ""
    latitude: float | None = None
    longitude: float | None = None

    @property
    def hierarchical(self) -> str:
        """Lightroom's keyword path: ``Landmarks|<country>|<name>`` (``|`` inside names is
        Lightroom's separator, so it becomes ``/``)."""
        parts = ["Landmarks", self.country, self.name]
        return "|".join(p.replace("|", "/") for p in parts if p)

    @property
    def location(self) -> dict:
        loc = {"LocationName": self.name}
        if self.city:
            loc["City"] = self.city
        if self.country:
            loc["CountryName"] = self.country
        if self.latitude is not None and self.longitude is not None:
            loc["GPSLatitude"] = round(self.latitude, 7)
            loc["GPSLongitude"] = round(self.longitude, 7)
        return loc


def sidecar_path(photo: Path, style: str = "darktable") -> Path:
    if style not in SIDECAR_STYLES:
        raise ValueError(f"sidecar style must be one of {', '.join(SIDECAR_STYLES)}, not {style!r}")
    return (
        photo.with_name(photo.name + ".xmp") if style == "darktable" else photo.with_suffix(".xmp")
    )


def place_of(address: str) -> tuple[str, str]:
    """(city, country) from a catalog address like ``"Tajganj, Agra, Uttar Pradesh 282001,
    India"``: the country is the last part; the city the part before the region (postal codes
    dropped). Best effort: catalogs carry free-form addresses, not structured places."""
    parts = [p.strip() for p in address.split(",") if p.strip()]
    if not parts:
        return "", ""
    country = parts[-1]
    if any(c.isdigit() for c in country):
        return "", ""  # "Seoul 04524" style endings: no country named
    city = parts[-3] if len(parts) >= 3 else (parts[0] if len(parts) == 2 else "")
    city = " ".join(w for w in city.split() if not any(c.isdigit() for c in w))
    return city, country


class Metadata:
    """One exiftool process for a run; use as a context manager."""

    def __init__(self) -> None:
        try:
            import exiftool
        except ImportError as e:  # pragma: no cover - it is a dependency
            raise MetadataError(f"pyexiftool is not installed ({e})") from None
        self._exiftool = exiftool
        self._et = exiftool.ExifToolHelper(config_file=str(CONFIG), common_args=["-G1", "-n"])
        try:
            self._et.run()
        except Exception as e:
            raise MetadataError(
                f"cannot start exiftool ({e}); install it (Debian: libimage-exiftool-perl)"
            ) from None

    def close(self) -> None:
        try:
            self._et.terminate()
        except Exception:
            pass

    def __enter__(self) -> Metadata:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self, *args: str, raw: bool = False) -> str | bytes:
        try:
            return self._et.execute(*args, raw_bytes=raw)
        except self._exiftool.exceptions.ExifToolExecuteError as e:
            msg = " ".join(str(e.stderr or e.stdout or e).split())
            raise MetadataError(msg or "exiftool failed") from None

    def read(self, target: Path) -> dict:
        """Our fields and the lists we edit, as exiftool reads them (``{}`` if no file)."""
        if not target.exists():
            return {}
        out = self._run(
            "-j", "-struct", *(f"-{t}" for t in _LISTS), f"-{NS}:all", "-GPSLatitude",
            "-GPSLongitude", str(target),
        )  # fmt: skip
        data = json.loads(out or "[{}]")[0]
        return data

    def preview(self, raw_file: Path) -> bytes | None:
        """The largest embedded JPEG of a RAW file, or None when it has none."""
        for tag in ("-JpgFromRaw", "-PreviewImage", "-ThumbnailImage"):
            try:
                data = self._run("-b", tag, str(raw_file), raw=True)
            except MetadataError:
                return None
            if data and len(data) > 1000:
                return bytes(data)
        return None

    # -- writing -----------------------------------------------------------------------------

    def write(
        self, target: Path, tag: LandmarkTag, set_gps: bool = False, sidecar: bool = True
    ) -> None:
        """Add (or replace our previous) keyword, location and id on ``target``; with
        ``set_gps`` also set its GPS position to the landmark's, remembering the one replaced."""
        if sidecar and not target.exists():
            write_text_atomic(target, _EMPTY_XMP)  # exiftool then edits it by temp + rename
        old = self.read(target)
        ours = _ours(old)
        subjects = _without(old.get("XMP-dc:Subject"), ours.get("Keyword"))
        hier = _without(old.get("XMP-lr:HierarchicalSubject"), ours.get("HierarchicalKeyword"))
        locs = [
            loc
            for loc in _as_list(old.get("XMP-iptcExt:LocationShown"))
            if not (ours.get("LocationName") and loc.get("LocationName") == ours["LocationName"])
        ]
        new: dict = {f"{NS}:{k}": v for k, v in ours.items() if k == "PreviousGPS"}
        if tag.name not in subjects:
            subjects.append(tag.name)
            new[f"{NS}:Keyword"] = tag.name
        if tag.hierarchical not in hier:
            hier.append(tag.hierarchical)
            new[f"{NS}:HierarchicalKeyword"] = tag.hierarchical
        locs.append(tag.location)
        new.update(
            {
                "XMP-dc:Subject": subjects,
                "XMP-lr:HierarchicalSubject": hier,
                "XMP-iptcExt:LocationShown": locs,
                f"{NS}:LandmarkID": tag.landmark_id,
                f"{NS}:LandmarkName": tag.name,
                f"{NS}:LocationName": tag.name,
                f"{NS}:Confidence": round(float(tag.confidence), 4),
                f"{NS}:Tagger": TAGGER,
            }
        )
        if set_gps and tag.latitude is not None and tag.longitude is not None:
            if "PreviousGPS" not in ours:
                new[f"{NS}:PreviousGPS"] = _gps_text(old)
            new.update(_gps_values(tag.latitude, tag.longitude, sidecar))
        self._apply(target, new)

    def clear(self, target: Path, sidecar: bool = True) -> bool:
        """Remove what ``write`` added (restoring a GPS position it replaced). A sidecar left
        with nothing else in it is deleted. True if anything of ours was there."""
        old = self.read(target)
        ours = _ours(old)
        if not ours:
            return False
        new: dict = {
            "XMP-dc:Subject": _without(old.get("XMP-dc:Subject"), ours.get("Keyword")),
            "XMP-lr:HierarchicalSubject": _without(
                old.get("XMP-lr:HierarchicalSubject"), ours.get("HierarchicalKeyword")
            ),
            "XMP-iptcExt:LocationShown": [
                loc
                for loc in _as_list(old.get("XMP-iptcExt:LocationShown"))
                if loc.get("LocationName") != ours.get("LocationName")
            ],
        }
        extra: list[str] = []
        if "PreviousGPS" in ours:
            prev = _parse_gps(ours["PreviousGPS"])
            if prev is None:
                group = "XMP-exif" if sidecar else "EXIF"
                refs = [] if sidecar else ["GPSLatitudeRef", "GPSLongitudeRef"]
                extra = [f"-{group}:{t}=" for t in ("GPSLatitude", "GPSLongitude", *refs)]
            else:
                new.update(_gps_values(*prev, sidecar))
        self._apply(target, new, extra)
        if sidecar and _only_toolkit(self._run("-j", "-XMP:all", str(target))):
            target.unlink()
            fsync_dir(target.parent)
        return True

    def _apply(self, target: Path, values: dict, extra: list[str] = ()) -> None:
        """Delete the list tags and our namespace, then set ``values`` (lists whole), in one
        exiftool call; exiftool replaces the file only once the new one is complete."""
        Path(f"{target}_exiftool_tmp").unlink(missing_ok=True)  # left by a killed run
        values = {k: v for k, v in values.items() if v not in ([], None, "")}
        fd, tmp = tempfile.mkstemp(suffix=".json", prefix="lf-tag-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump([{"SourceFile": str(target), **values}], f, ensure_ascii=False)
            self._run(
                "-overwrite_original", "-charset", "filename=utf8",
                *(f"-{t}=" for t in _LISTS), f"-{NS}:all=", *extra,
                f"-json={tmp}", str(target),
            )  # fmt: skip
        finally:
            os.unlink(tmp)
        fsync_dir(target.parent)


def _as_list(v) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, list) else [v]


def _without(values, ours: str | None) -> list:
    return [str(v) for v in _as_list(values) if ours is None or str(v) != ours]


def _ours(old: dict) -> dict:
    prefix = f"{NS}:"
    return {k[len(prefix) :]: v for k, v in old.items() if k.startswith(prefix)}


def _gps_text(old: dict) -> str:
    lat = next((v for k, v in old.items() if k.endswith(":GPSLatitude")), None)
    lon = next((v for k, v in old.items() if k.endswith(":GPSLongitude")), None)
    try:
        return f"{float(lat):.7f},{float(lon):.7f}"
    except (TypeError, ValueError):
        return "none"


def _parse_gps(text: str) -> tuple[float, float] | None:
    try:
        lat, lon = (float(x) for x in str(text).split(","))
        return lat, lon
    except ValueError:
        return None


def _gps_values(lat: float, lon: float, sidecar: bool) -> dict:
    if sidecar:
        return {"XMP-exif:GPSLatitude": round(lat, 7), "XMP-exif:GPSLongitude": round(lon, 7)}
    return {
        "GPS:GPSLatitude": round(abs(lat), 7),
        "GPS:GPSLatitudeRef": "N" if lat >= 0 else "S",
        "GPS:GPSLongitude": round(abs(lon), 7),
        "GPS:GPSLongitudeRef": "E" if lon >= 0 else "W",
    }


def _only_toolkit(out: str) -> bool:
    data = json.loads(out or "[{}]")[0]
    return not [k for k in data if k.startswith("XMP") and not k.endswith(":XMPToolkit")]

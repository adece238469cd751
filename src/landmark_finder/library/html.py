"""The HTML report of a tagged library: a map of landmarks, mis-tagged photos, photos by landmark.

``DIR/index.html`` is self-contained (Leaflet, the world outline and the data are inlined, so it
opens from disk with no server and no network); thumbnails sit beside it in ``DIR/thumbs/``,
named by content hash so a re-run reuses them. The map is drawn by the web app's
``albummap.js`` with its vendored Leaflet and Natural Earth outline: one look everywhere.

The page speaks the current language (:mod:`landmark_finder.i18n`): headings and the summary are
translated here, and the few texts its scripts show are inlined, already translated.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections import Counter
from pathlib import Path

from landmark_finder.core.atomic import write_bytes_atomic, write_text_atomic
from landmark_finder.core.images import ImageLoadError, load_image
from landmark_finder.core.progress import Progress, no_progress
from landmark_finder.i18n import N_, _, current_language, n_landmarks, ngettext
from landmark_finder.library.db import PhotoRecord
from landmark_finder.library.report import row

TEMPLATE = Path(__file__).with_name("report.html")
STATIC = Path(__file__).parents[1] / "web" / "static"
VENDOR = STATIC / "vendor"
THUMB_SIDE = 280

#: Texts the page's scripts (and albummap.js) show, translated into the page's language.
SCRIPT_TEXTS = (
    N_("None: every GPS tag agrees with the landmark shown."),
    N_("Not a landmark I know"),
    N_("Unreadable"),
    N_("unreadable"),
    N_("{photo}: tagged {km} km from {landmark}"),
)


def _script_safe(text: str) -> str:
    """Text that cannot end the <script> element it is inlined in."""
    return text.replace("</", "<\\/")


def _thumb(rec: PhotoRecord, folder: Path) -> str | None:
    if rec.status == "error" or not rec.sha256:
        return None
    name = f"{rec.sha256[:20]}.jpg"
    out = folder / name
    if not out.exists():
        try:
            img = load_image(rec.path, max_side=THUMB_SIDE)
        except ImageLoadError:
            return None
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=82)
        write_bytes_atomic(out, buf.getvalue())
    return f"thumbs/{name}"


def write_html(
    records: list[PhotoRecord], out_dir: Path, max_km: float, progress: Progress = no_progress
) -> Path:
    """Write ``out_dir/index.html`` (+ thumbnails); returns the page's path."""
    out_dir = Path(out_dir)
    thumbs = out_dir / "thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, rec in enumerate(records, 1):
        r = row(rec, max_km)
        r["name"] = Path(rec.path).name
        r["thumb"] = _thumb(rec, thumbs)
        rows.append(r)
        progress(i, len(records), N_("thumbnails"))
    status = Counter(r["status"] for r in rows)
    summary = {
        "photos": len(rows),
        "recognized": status["recognized"],
        "unknown": status["unknown"],
        "errors": status["error"],
        "landmarks": len({r["landmark_id"] for r in rows if r["landmark_id"]}),
        "mismatches": sum(r["gps_mismatch"] for r in rows),
        "max_km": max_km,
    }
    texts = {
        "/*LANG*/": current_language(),
        "/*TITLE*/": _("Photo library: landmarks"),
        "/*HEADING*/": _("Landmarks in this photo library"),
        "/*SUMMARY*/": _summary(summary),
        "/*MISMATCH_TITLE*/": _("Photos whose GPS tag is far from the landmark they show"),
        "/*TH_PHOTO*/": _("photo"),
        "/*TH_SHOWS*/": _("shows"),
        "/*TH_GPS*/": _("GPS tag"),
        "/*TH_DISTANCE*/": _("distance"),
    }
    parts = {k: html.escape(v) for k, v in texts.items()}
    parts |= {
        "/*TEXTS*/": json.dumps({m: _(m) for m in SCRIPT_TEXTS}, ensure_ascii=False),
        "/*LEAFLET_CSS*/": (VENDOR / "leaflet" / "leaflet.css").read_text("utf-8"),
        "/*DATA*/": json.dumps({"summary": summary, "rows": rows}, ensure_ascii=False),
        "/*OUTLINE*/": (VENDOR / "world-atlas" / "countries-110m.json").read_text("utf-8"),
        "/*LEAFLET_JS*/": (VENDOR / "leaflet" / "leaflet.js").read_text("utf-8"),
        "/*TOPOJSON_JS*/": (VENDOR / "topojson-client" / "topojson-client.min.js").read_text(
            "utf-8"
        ),
        "/*ALBUMMAP_JS*/": (STATIC / "albummap.js").read_text("utf-8"),
    }
    # One pass, so text inlined earlier (a photo's path) is never taken for a placeholder.
    page = re.sub(
        r"/\*[A-Z_]+\*/",
        lambda m: _script_safe(parts[m.group(0)]) if m.group(0) in parts else m.group(0),
        TEMPLATE.read_text("utf-8"),
    )
    out = out_dir / "index.html"
    write_text_atomic(out, page)
    return out


def _summary(s: dict) -> str:
    """``12 photos: 10 of 3 landmarks, 1 unknown, 1 unreadable; 2 with a GPS tag more than 5 km
    from the landmark.`` in the current language, plural forms by its rule."""
    text = ngettext(
        "{n} photo: {recognized} of {landmarks}, {unknown} unknown, {errors} unreadable; "
        "{mismatches} with a GPS tag more than {km} km from the landmark.",
        "{n} photos: {recognized} of {landmarks}, {unknown} unknown, {errors} unreadable; "
        "{mismatches} with a GPS tag more than {km} km from the landmark.",
        s["photos"],
    )
    return text.format(
        n=s["photos"],
        recognized=s["recognized"],
        landmarks=n_landmarks(s["landmarks"]),
        unknown=s["unknown"],
        errors=s["errors"],
        mismatches=s["mismatches"],
        km=f"{s['max_km']:g}",
    )

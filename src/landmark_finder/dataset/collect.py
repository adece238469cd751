"""Building a gallery from a list of photo URLs and/or Wikimedia Commons categories.

Input: a CSV with a ``landmark_id`` and a ``url`` column (a header row is optional when there
are just those two columns), and optionally ``commons_category`` (photos of that Commons
category are added for the landmark), ``licence`` and ``author`` (recorded for plain URLs).

Each download must be a 200 response with an ``image/*`` Content-Type, within the size limit,
and decode with :func:`landmark_finder.core.images.load_image`; it is stored under
``OUT/<landmark_id>/<sha256 prefix>.<ext>`` exactly as received, with a sidecar
``<file>.json`` recording the source URL, licence, author (when known) and retrieval time.
Identical content is kept once, and URLs already collected (found in existing sidecars) are
not fetched again, so an interrupted run is resumed by running it again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from landmark_finder.core.images import ImageLoadError, image_info, load_image
from landmark_finder.core.progress import Progress, no_progress
from landmark_finder.dataset.commons import COMMONS_API, RemotePhoto, category_photos
from landmark_finder.dataset.http import FetchError, HttpSettings, PoliteClient
from landmark_finder.dataset.manifest import write_bytes_atomic, write_json_atomic
from landmark_finder.errors import CollectListError
from landmark_finder.i18n import N_

_EXT = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "HEIF": ".heic",
}


@dataclass(frozen=True)
class ListRow:
    landmark_id: str
    url: str = ""
    commons_category: str = ""
    licence: str = ""
    author: str = ""
    line: int = 0


@dataclass
class CollectReport:
    saved: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "<url>: <reason>" or "line N: <reason>"
    duplicates: int = 0  # same content as a photo already in OUT
    already_collected: int = 0  # URL found in an existing sidecar: not fetched again
    per_landmark: dict[str, int] = field(default_factory=dict)


def _safe_id(value: str) -> bool:
    return (
        bool(value)
        and value not in (".", "..")
        and "/" not in value
        and "\\" not in value
        and not value.startswith(".")
        and "\x00" not in value
    )


def read_list(path: Path) -> tuple[list[ListRow], list[str]]:
    """Rows of the input CSV and one-line complaints about rows that cannot be used."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise CollectListError(
            f"{path}: cannot read ({getattr(e, 'strerror', None) or e})"
        ) from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise CollectListError(f"{path}: empty list")
    header = [h.strip().lower() for h in rows[0]]
    if "landmark_id" in header:
        body, start = rows[1:], 2
        if "url" not in header and "commons_category" not in header:
            raise CollectListError(
                f"{path}: needs a url or commons_category column next to landmark_id"
            )
    else:
        header, body, start = ["landmark_id", "url"], rows, 1
    col = {name: header.index(name) for name in header if name}
    out, problems = [], []
    for n, r in enumerate(body, start):
        if not any(c.strip() for c in r):
            continue

        def get(name: str, r: list[str] = r) -> str:
            i = col.get(name)
            return r[i].strip() if i is not None and i < len(r) else ""

        row = ListRow(
            get("landmark_id"),
            get("url"),
            get("commons_category"),
            get("licence") or get("license"),
            get("author"),
            n,
        )
        if not _safe_id(row.landmark_id):
            problems.append(
                f"line {n}: bad landmark_id {row.landmark_id!r} (must be a plain folder name)"
            )
        elif not row.url and not row.commons_category:
            problems.append(f"line {n}: no url and no commons_category")
        else:
            out.append(row)
    return out, problems


def _existing(out: Path) -> tuple[set[str], set[str]]:
    """Content hashes and source URLs of what an earlier run already saved in ``out``."""
    hashes, urls = set(), set()
    if not out.is_dir():
        return hashes, urls
    for side in out.glob("*/*.json"):
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and side.with_suffix("").exists():
            hashes.add(str(meta.get("sha256", "")))
            urls.add(str(meta.get("source_url", "")))
    return hashes, urls


def collect(
    list_csv: Path,
    out: Path,
    settings: HttpSettings | None = None,
    per_category: int = 50,
    commons_api: str = COMMONS_API,
    thumb_width: int | None = 1600,
    client: PoliteClient | None = None,
    progress: Progress = no_progress,
) -> CollectReport:
    """Download the listed photos into ``out`` (one folder per landmark) with sidecars."""
    out = Path(out)
    rows, problems = read_list(list_csv)
    report = CollectReport(failed=list(problems))
    own_client = client is None
    client = client or PoliteClient(settings)
    hashes, urls = _existing(out)
    try:
        # 1. Expand the list: plain URLs, then each Commons category's photos.
        todo: list[tuple[str, RemotePhoto]] = []
        for row in rows:
            if row.url:
                todo.append(
                    (row.landmark_id, RemotePhoto(row.url, licence=row.licence, author=row.author))
                )
        cats = [r for r in rows if r.commons_category]
        for n, row in enumerate(cats, 1):
            progress(n - 1, len(cats), N_("listing Commons categories"))
            try:
                todo += [
                    (row.landmark_id, p)
                    for p in category_photos(
                        client, row.commons_category, per_category, commons_api, thumb_width
                    )
                ]
            except FetchError as e:
                report.failed.append(
                    f"line {row.line}: Commons category {row.commons_category!r}: {e.reason}"
                )
            progress(n, len(cats), N_("listing Commons categories"))
        # 2. Download, check and store.
        progress(0, len(todo), N_("downloading photos"))
        for n, (landmark, photo) in enumerate(todo, 1):
            if photo.url in urls:
                report.already_collected += 1
            else:
                urls.add(photo.url)
                try:
                    path = _fetch_one(client, landmark, photo, out, hashes)
                except FetchError as e:
                    report.failed.append(str(e))
                else:
                    if path is None:
                        report.duplicates += 1
                    else:
                        report.saved.append(path)
                        report.per_landmark[landmark] = report.per_landmark.get(landmark, 0) + 1
            progress(n, len(todo), N_("downloading photos"))
    finally:
        if own_client:
            client.close()
    return report


def _fetch_one(
    client: PoliteClient, landmark: str, photo: RemotePhoto, out: Path, hashes: set[str]
) -> Path | None:
    """Download one photo; None if its content is already in the gallery."""
    data, ctype = client.get(photo.url)
    mime = ctype.split(";")[0].strip().lower()
    if not mime.startswith("image/"):
        raise FetchError(photo.url, f"not an image (Content-Type {mime or 'missing'})")
    try:
        img = load_image(data, name=photo.url)
        info = image_info(data)  # type: ignore[arg-type]  # bytes are accepted like a path
    except ImageLoadError as e:
        raise FetchError(photo.url, f"not a usable image ({e.reason})") from None
    sha = hashlib.sha256(data).hexdigest()
    if sha in hashes:
        return None
    hashes.add(sha)
    dest = out / landmark / f"{sha[:16]}{_EXT.get(info.format, '.img')}"
    write_bytes_atomic(dest, data)
    write_json_atomic(
        dest.with_name(dest.name + ".json"),
        {
            "landmark_id": landmark,
            "source_url": photo.url,
            "page_url": photo.page_url or None,
            "title": photo.title or None,
            "licence": photo.licence or None,
            "licence_url": photo.licence_url or None,
            "author": photo.author or None,
            "credit": photo.credit or None,
            "retrieved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "sha256": sha,
            "content_type": mime,
            "bytes": len(data),
            "width": img.width,
            "height": img.height,
        },
    )
    return dest

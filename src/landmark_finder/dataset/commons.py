"""Photos of a Wikimedia Commons category, with their licence and author, via the public API.

One ``action=query`` request with ``generator=categorymembers`` (files only) and
``prop=imageinfo`` returns, per file, its URL, a scaled rendition (``iiurlwidth``; smaller
downloads and no TIFF/RAW originals), the MIME type and the ``extmetadata`` licence fields;
``continue`` tokens page through big categories. ``maxlag`` asks the API to refuse us when its
replicas lag, as Wikimedia's bot etiquette requests; such refusals are retried.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from landmark_finder.dataset.http import FetchError, PoliteClient

COMMONS_API = "https://commons.wikimedia.org/w/api.php"
MAXLAG_WAIT = 5.0  # seconds to wait after a "maxlag" refusal (doubled, tripled on repeats)
#: MIME types ``load_image`` can decode (SVG, PDF, video and audio files are skipped).
IMAGE_MIMES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
        "image/tiff",
        "image/bmp",
        "image/heic",
        "image/heif",
    }
)
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class RemotePhoto:
    """A photo to download and what is known about its rights."""

    url: str
    page_url: str = ""  # the file's description page
    title: str = ""
    licence: str = ""
    licence_url: str = ""
    author: str = ""
    credit: str = ""


def _text(meta: dict, key: str) -> str:
    """Plain text of an extmetadata field (values are HTML snippets)."""
    value = (meta.get(key) or {}).get("value", "")
    return " ".join(html.unescape(_TAG.sub(" ", str(value))).split())


def category_title(name: str) -> str:
    name = name.strip()
    return name if name.lower().startswith("category:") else f"Category:{name}"


def category_photos(
    client: PoliteClient,
    category: str,
    limit: int = 50,
    api_url: str = COMMONS_API,
    thumb_width: int | None = 1600,
) -> Iterator[RemotePhoto]:
    """Up to ``limit`` photos in ``category`` (not its sub-categories), in the API's order."""
    params = {
        "action": "query",
        "format": "json",
        "formatversion": "2",
        "maxlag": "5",
        "generator": "categorymembers",
        "gcmtitle": category_title(category),
        "gcmtype": "file",
        "gcmlimit": str(min(50, max(1, limit))),
        "prop": "imageinfo",
        "iiprop": "url|mime|size|extmetadata",
        "iiextmetadatafilter": "LicenseShortName|LicenseUrl|Artist|Credit|UsageTerms",
    }
    if thumb_width:
        params["iiurlwidth"] = str(thumb_width)
    cont: dict = {}
    n = lagged = 0
    for _page in range(1000):  # bounded, whatever the server says
        body, _ctype = client.get(api_url, params={**params, **cont})
        try:
            data = json.loads(body)
        except ValueError:
            raise FetchError(api_url, "the API did not return JSON") from None
        if (data.get("error") or {}).get("code") == "maxlag" and lagged < client.settings.retries:
            lagged += 1  # the wikis are busy: wait as asked, then ask again for the same page
            client.pause(MAXLAG_WAIT * lagged)
            continue
        if "error" in data:
            err = data["error"]
            raise FetchError(
                api_url, f"API error {err.get('code', '?')}: {err.get('info', '')}".strip()
            )
        pages = (data.get("query") or {}).get("pages") or []
        if isinstance(pages, dict):  # formatversion=1 servers
            pages = list(pages.values())
        for page in sorted(pages, key=lambda p: p.get("title", "")):
            info = (page.get("imageinfo") or [{}])[0]
            if info.get("mime") not in IMAGE_MIMES:
                continue
            url = info.get("thumburl") or info.get("url")
            if not url:
                continue
            meta = info.get("extmetadata") or {}
            yield RemotePhoto(
                url=url,
                page_url=info.get("descriptionurl", ""),
                title=page.get("title", ""),
                licence=_text(meta, "LicenseShortName") or _text(meta, "UsageTerms"),
                licence_url=_text(meta, "LicenseUrl"),
                author=_text(meta, "Artist"),
                credit=_text(meta, "Credit"),
            )
            n += 1
            if n >= limit:
                return
        cont = data.get("continue") or {}
        if not cont:
            return

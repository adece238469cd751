"""OpenStreetMap Nominatim look-ups for catalog enrichment: addresses, and coordinates when
Wikidata has none.

Built on geopy's ``Nominatim`` geocoder and its ``RateLimiter``, the usual, well-kept way to
honour the Nominatim usage policy (https://operations.osmfoundation.org/policies/nominatim/):
at most one request per second, a User-Agent that identifies the application (with a contact
address, ``--contact``), results cached and never asked twice (the
:class:`~landmark_finder.dataset.lookup_cache.LookupCache` sits in front of the limiter, so a
cached answer costs no request slot). geopy's limiter waits a fixed time between retries; the
retries here back off exponentially instead, honour a 429's ``Retry-After``, and every attempt
still takes a request slot from the limiter. Errors that a retry cannot fix (400, 403) are not
retried.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from geopy.exc import (
    GeocoderRateLimited,
    GeocoderServiceError,
    GeocoderTimedOut,
    GeocoderUnavailable,
)
from geopy.extra.rate_limiter import RateLimiter
from geopy.geocoders import Nominatim

from landmark_finder.dataset.http import FetchError
from landmark_finder.dataset.lookup_cache import LookupCache, NoCache, cache_key

DEFAULT_NOMINATIM_URL = "https://nominatim.openstreetmap.org"
#: The usage policy's absolute maximum.
MIN_INTERVAL = 1.0


@dataclass(frozen=True)
class NominatimSettings:
    url: str = DEFAULT_NOMINATIM_URL
    user_agent: str = "landmark-finder"
    min_interval: float = MIN_INTERVAL
    retries: int = 3
    backoff: float = 2.0  # first retry waits this long (at least one slot), then doubles
    max_retry_after: float = 120.0
    timeout: float = 30.0


def _retryable(e: Exception) -> bool:
    # 5xx without a class of its own arrives as the base GeocoderServiceError; its subclasses
    # (bad query, forbidden, quota) will fail the same way however often they are asked.
    return isinstance(e, (GeocoderRateLimited, GeocoderTimedOut, GeocoderUnavailable)) or (
        type(e) is GeocoderServiceError
    )


def _call(method: Any, *args: Any, **kwargs: Any) -> Any:
    return method(*args, **kwargs)


class NominatimClient:
    """``search`` and ``reverse`` returning Nominatim's raw JSON objects, cached and paced."""

    def __init__(
        self, settings: NominatimSettings, cache: LookupCache | NoCache, sleep=time.sleep
    ) -> None:
        if (
            settings.min_interval < MIN_INTERVAL
            and urlsplit(settings.url).hostname == urlsplit(DEFAULT_NOMINATIM_URL).hostname
        ):
            raise ValueError("the public Nominatim allows at most 1 request per second")
        parts = urlsplit(settings.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Nominatim URL {settings.url!r} must be http(s)://host[/path]")
        self.settings, self.cache, self._sleep = settings, cache, sleep
        self.geocoder = Nominatim(
            user_agent=settings.user_agent,
            domain=parts.netloc + parts.path.rstrip("/"),
            scheme=parts.scheme,
            timeout=settings.timeout,
        )
        # One limiter for both endpoints: the policy counts requests to the server, not per path.
        self._limited = RateLimiter(
            _call, min_delay_seconds=settings.min_interval, max_retries=0, swallow_exceptions=False
        )
        self.requests_made = 0

    def _ask(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        s = self.settings
        for attempt in range(s.retries + 1):
            self.requests_made += 1
            try:
                return self._limited(method, *args, **kwargs)
            except GeocoderServiceError as e:
                if not _retryable(e) or attempt >= s.retries:
                    raise FetchError(
                        s.url, f"{type(e).__name__}: {e} (after {attempt + 1} attempts)"
                    ) from None
                wait = s.backoff * 2**attempt
                if isinstance(e, GeocoderRateLimited) and e.retry_after:
                    wait = max(wait, min(float(e.retry_after), s.max_retry_after))
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def search(
        self,
        query: str,
        lang: str,
        viewbox: tuple[float, float, float, float] | None = None,
        limit: int = 5,
    ) -> list[dict]:
        """Places matching ``query``; ``viewbox`` (south, west, north, east) bounds the search."""
        params: dict[str, Any] = {"q": query, "lang": lang, "limit": limit}
        if viewbox:
            params["viewbox"] = list(viewbox)
        key = cache_key(f"nominatim-search {self.settings.url}", params)
        if (cached := self.cache.get(key)) is not None:
            return cached
        kwargs: dict[str, Any] = dict(
            exactly_one=False,
            limit=limit,
            addressdetails=True,
            extratags=True,
            namedetails=True,
            language=lang,
        )
        if viewbox:
            south, west, north, east = viewbox
            kwargs.update(viewbox=[(south, west), (north, east)], bounded=True)
        found = self._ask(self.geocoder.geocode, query, **kwargs) or []
        raw = [loc.raw for loc in found]
        self.cache.put(key, raw)
        return raw

    def reverse(self, latitude: float, longitude: float, lang: str) -> dict | None:
        """The address at a point (building level), or None where Nominatim has nothing."""
        params = {"lat": round(latitude, 7), "lon": round(longitude, 7), "lang": lang}
        key = cache_key(f"nominatim-reverse {self.settings.url}", params)
        if (cached := self.cache.get(key)) is not None:
            return cached or None
        found = self._ask(
            self.geocoder.reverse,
            (latitude, longitude),
            exactly_one=True,
            language=lang,
            addressdetails=True,
            zoom=18,
        )
        raw = found.raw if found is not None else {}
        self.cache.put(key, raw)
        return raw or None


def address_of(raw: dict) -> str:
    """The postal-style address of a Nominatim result: its display name without the place's
    own name in front ("N서울타워, 105, 남산공원길, ..." -> "105, 남산공원길, ...")."""
    display = str(raw.get("display_name", ""))
    parts = [p.strip() for p in display.split(",")]
    address = raw.get("address") or {}
    first_key = next(iter(address), "")
    own_name = raw.get("name") or (
        address.get(first_key, "") if first_key not in _ADDRESS_KEYS else ""
    )
    if len(parts) > 1 and own_name and parts[0] == own_name:
        parts = parts[1:]
    return ", ".join(p for p in parts if p)


_ADDRESS_KEYS = frozenset(
    "house_number house_name road street block quarter neighbourhood suburb borough "
    "city_district district city town village municipality county state_district state "
    "province region postcode country country_code".split()
)


__all__ = [
    "DEFAULT_NOMINATIM_URL",
    "NominatimClient",
    "NominatimSettings",
    "address_of",
]

"""A polite HTTP client for gathering photos: rate limit, retries with backoff, size limit.

Built on ``requests`` (a synchronous client is all a one-file-at-a-time crawler needs; its
streaming ``iter_content`` lets the size limit stop a download early, and it is the most widely
installed Python HTTP client). Retries are written out here rather than delegated to urllib3's
``Retry`` because every attempt — retries included — must go through the per-host rate limit,
and the first retry must wait too (urllib3 retries the first time immediately).
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests

from landmark_finder.errors import FetchError

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Wikimedia asks bots for a descriptive User-Agent with a way to contact the operator.
#: Pass your own (``--user-agent "my-gallery/1.0 (me@example.org)"``) for large crawls.
DEFAULT_USER_AGENT = f"landmark-finder/0.1 (dataset collect) python-requests/{requests.__version__}"


@dataclass
class HttpSettings:
    min_interval: float = 1.0  # seconds between two requests to one host (Wikimedia: be gentle)
    retries: int = 3  # extra attempts after a time-out, connection error or 408/429/5xx
    backoff: float = 2.0  # first retry waits this long, then doubles
    max_retry_after: float = 120.0  # cap on a server's Retry-After
    timeout: float = 30.0
    max_bytes: int = 25_000_000  # larger responses are refused (Content-Length) or cut off
    user_agent: str = DEFAULT_USER_AGENT


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


class PoliteClient:
    """GETs with a per-host minimum interval, retries with exponential backoff and a size cap."""

    def __init__(
        self,
        settings: HttpSettings | None = None,
        session: requests.Session | None = None,
        sleep=time.sleep,
        clock=time.monotonic,
    ) -> None:
        self.settings = settings or HttpSettings()
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = self.settings.user_agent
        self._sleep, self._clock = sleep, clock
        self._last: dict[str, float] = {}
        self.requests_made = 0

    def pause(self, seconds: float) -> None:
        """Wait (through the injectable sleep, so tests never really wait)."""
        self._sleep(seconds)

    def close(self) -> None:
        self.session.close()

    def _wait_turn(self, url: str) -> None:
        host = urlsplit(url).netloc
        last = self._last.get(host)
        if last is not None:
            delay = self.settings.min_interval - (self._clock() - last)
            if delay > 0:
                self._sleep(delay)
        self._last[host] = self._clock()

    def get(self, url: str, params: dict | None = None) -> tuple[bytes, str]:
        """Body and Content-Type of a 200 response; raises FetchError with the reason otherwise."""
        s = self.settings
        if urlsplit(url).scheme not in ("http", "https"):
            raise FetchError(url, "only http and https URLs are fetched")
        for attempt in range(s.retries + 1):
            self._wait_turn(url)
            self.requests_made += 1
            wait = s.backoff * 2**attempt
            try:
                with self.session.get(url, params=params, stream=True, timeout=s.timeout) as r:
                    if r.status_code in RETRY_STATUSES and attempt < s.retries:
                        ra = _retry_after(r.headers.get("Retry-After"))
                        self._sleep(min(s.max_retry_after, max(wait, ra or 0.0)))
                        continue
                    if r.status_code != 200:
                        raise FetchError(url, f"HTTP {r.status_code} {r.reason or ''}".strip())
                    length = r.headers.get("Content-Length")
                    if length and length.isdigit() and int(length) > s.max_bytes:
                        raise FetchError(
                            url, f"too large ({int(length):,} bytes, limit {s.max_bytes:,})"
                        )
                    chunks, size = [], 0
                    for chunk in r.iter_content(1 << 16):
                        size += len(chunk)
                        if size > s.max_bytes:
                            raise FetchError(
                                url, f"too large (over the {s.max_bytes:,}-byte limit)"
                            )
                        chunks.append(chunk)
                    return b"".join(chunks), r.headers.get("Content-Type", "")
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as e:
                if attempt >= s.retries:
                    raise FetchError(
                        url, f"network error after {attempt + 1} attempts ({type(e).__name__})"
                    ) from None
                self._sleep(wait)
            except requests.RequestException as e:
                raise FetchError(url, f"request failed ({type(e).__name__}: {e})") from None
        raise FetchError(url, f"gave up after {s.retries + 1} attempts")  # pragma: no cover

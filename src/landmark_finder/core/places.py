"""Offline reverse geocoding: the city and country a photo's GPS tag points at.

A wrong GPS tag is easier to spot as "Incheon" than as "37.46, 126.44", and tag reports need a
city and a country to write. No service is asked: the ``reverse-geocode`` package bundles the
GeoNames gazetteer (every populated place of 1,000+ people, with state, county and country)
and answers with a k-d tree, so this works offline and sends nobody the user's whereabouts.

The nearest populated place is often a neighbourhood ("Yongsan-dong" for N Seoul Tower,
"Vanves" for the Eiffel Tower), which is not what people call the city. So ``city`` is the
nearest place of ``CITY_POPULATION`` people or more when one lies within ``CITY_RADIUS_KM``,
and the nearest place otherwise (the village itself, far from any city); ``locality`` keeps
the nearest place. The gazetteer costs ~3 s and ~200 MB on first use (once per process, then
microseconds per point); ``warm_up()`` lets a server pay that before its first request.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from landmark_finder.core.geo import GeoPoint, distance_km

CITY_POPULATION = 100_000
CITY_RADIUS_KM = 30.0
#: Farther than this from any populated place (open sea, Antarctica), no place is named.
MAX_DISTANCE_KM = 200.0

_lock = threading.Lock()


@dataclass(frozen=True)
class Place:
    """Where a point lies, by the GeoNames gazetteer; empty strings where it has no value."""

    city: str
    locality: str  # the nearest populated place, often a district of the city
    county: str
    state: str
    country: str
    country_code: str  # ISO 3166-1 alpha-2, e.g. "KR"
    distance_km: float  # from the point to the locality's centre

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        """'Seoul, Korea, Republic of': what a person reads next to a GPS tag."""
        return ", ".join(dict.fromkeys(p for p in (self.city, self.country) if p))


def _search(points: Sequence[tuple[float, float]], min_population: int) -> list[dict]:
    import reverse_geocode  # noqa: PLC0415 - heavy (gazetteer load); only when asked

    with _lock:  # the package's lazy singleton is not thread-safe while it loads
        return reverse_geocode.search(points, min_population=min_population)


def warm_up() -> None:
    """Load the gazetteer now (both trees), e.g. in a server's background thread."""
    places_of([GeoPoint(0.0, 0.0)])


def places_of(points: Sequence[GeoPoint]) -> list[Place | None]:
    """The place of each point (None far from any populated place), in one batch."""
    if not points:
        return []
    coords = [(p.latitude, p.longitude) for p in points]
    nearest, cities = _search(coords, 0), _search(coords, CITY_POPULATION)
    out: list[Place | None] = []
    for point, near, big in zip(points, nearest, cities, strict=True):
        d_near = distance_km(point, GeoPoint(near["latitude"], near["longitude"]))
        if d_near > MAX_DISTANCE_KM:
            out.append(None)
            continue
        d_big = distance_km(point, GeoPoint(big["latitude"], big["longitude"]))
        same_country = big["country_code"] == near["country_code"]
        city = big if d_big <= CITY_RADIUS_KM and same_country else near
        out.append(
            Place(
                city=city["city"],
                locality=near["city"],
                county=near.get("county", ""),
                state=near.get("state", ""),
                country=near.get("country", ""),
                country_code=near["country_code"],
                distance_km=round(d_near, 3),
            )
        )
    return out


def place_of(point: GeoPoint) -> Place | None:
    """The city and country of one point, from the bundled gazetteer (no network)."""
    return places_of([point])[0]


__all__ = ["CITY_POPULATION", "CITY_RADIUS_KM", "Place", "place_of", "places_of", "warm_up"]

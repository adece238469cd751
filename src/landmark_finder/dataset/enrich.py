"""Enrich a catalog of bare names: coordinates, address, localised names, country, website and
the Wikidata id, looked up in Wikidata and OpenStreetMap, with every value's source recorded.

Nobody should look up 392 places by hand, but nobody should get a wrong marker either. So a
name is matched only when the evidence is clear: candidates far from the ``--near`` area are
dropped, exact label/alias matches beat partial ones, and several candidates are taken as one
place only when they lie within ``same_place_km`` of each other (a building and the company
in it). Anything else, no match or several plausible places, is not guessed: it goes to the
review list with its best candidates, and the user puts the right Wikidata id in the
catalog's ``wikidata`` column (an id given there is read directly, never searched).

Fields already filled by the user are never overwritten; with ``refresh`` the fields filled by
an earlier enrichment (those with a ``source_*`` entry) are looked up again.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from landmark_finder.core.atomic import write_text_atomic
from landmark_finder.core.catalog import Catalog, Landmark
from landmark_finder.core.geo import GeoPoint, distance_km
from landmark_finder.dataset.nominatim import NominatimClient, address_of
from landmark_finder.dataset.wikidata import Item, WikidataClient

MIN_AREA_RADIUS_KM = 5.0
REVIEW_COLUMNS = (
    "id name problem rank source ref label description latitude longitude distance_km url".split()
)


@dataclass(frozen=True)
class Area:
    """The region a catalog is about (``--near``): matches outside it are dropped."""

    center: GeoPoint
    radius_km: float
    label: str

    def distance(self, lat: float, lon: float) -> float:
        return distance_km(self.center, GeoPoint(lat, lon))

    def viewbox(self) -> tuple[float, float, float, float]:
        """(south, west, north, east) enclosing the circle."""
        dlat = self.radius_km / 111.2
        dlon = dlat / max(0.01, math.cos(math.radians(self.center.latitude)))
        c = self.center
        return (
            max(-90.0, c.latitude - dlat),
            max(-180.0, c.longitude - dlon),
            min(90.0, c.latitude + dlat),
            min(180.0, c.longitude + dlon),
        )


_NEAR = re.compile(r"\s*([-+]?\d+(?:\.\d+)?)\s*,\s*([-+]?\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*")


def parse_near(text: str, nominatim: NominatimClient, lang: str) -> Area:
    """``"lat,lon,km"`` or a place name looked up in OpenStreetMap (its extent is the area)."""
    if m := _NEAR.fullmatch(text):
        lat, lon, km = (float(g) for g in m.groups())
        if not (-90 <= lat <= 90 and -180 <= lon <= 180 and km > 0):
            raise ValueError(f"--near {text!r}: expected lat,lon,km with a valid point and km > 0")
        return Area(GeoPoint(lat, lon), km, text)
    found = nominatim.search(text, lang, limit=1)
    if not found:
        raise ValueError(f"--near {text!r}: OpenStreetMap knows no such place")
    raw = found[0]
    center = GeoPoint(float(raw["lat"]), float(raw["lon"]))
    radius = MIN_AREA_RADIUS_KM
    if box := raw.get("boundingbox"):  # [south, north, west, east] as strings
        south, north, west, east = (float(v) for v in box)
        corners = [GeoPoint(south, west), GeoPoint(north, east)]
        radius = max(radius, max(distance_km(center, c) for c in corners))
    return Area(center, radius, raw.get("display_name", text))


@dataclass(frozen=True)
class Candidate:
    """One possible match, as the review list shows it."""

    source: str  # "wikidata" or "nominatim"
    ref: str  # "Q12345" or "way/123"
    label: str
    description: str
    latitude: float | None
    longitude: float | None
    exact: bool
    distance_km: float | None = None  # from the area's centre
    url: str = ""
    raw: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Review:
    id: str
    name: str
    problem: str
    candidates: tuple[Candidate, ...] = ()


@dataclass
class EnrichResult:
    catalog: Catalog
    reviews: list[Review]
    looked_up: int = 0
    matched: int = 0
    skipped: int = 0  # rows that already had coordinates (without refresh)


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\s\-_·・.,'’()\[\]]", "", text)


def search_texts(name: str) -> list[str]:
    """What to type into a search box, most specific first: the name as written, then without
    brackets ("NC백화점[강서]" -> "NC백화점 강서"), then without the bracketed part
    ("Golden Temple (Harmandir Sahib)" -> "Golden Temple")."""
    spaced = re.sub(r"\s+", " ", re.sub(r"[\[\]()]", " ", name)).strip()
    outside = re.sub(r"\s+", " ", re.sub(r"[\[(][^\])]*[\])]", " ", name)).strip()
    return [t for t in dict.fromkeys([name.strip(), spaced, outside]) if t]


def _wikidata_candidate(item: Item, query: str, area: Area | None) -> Candidate:
    names = [item.matched, *item.labels.values()]
    has_point = item.latitude is not None and item.longitude is not None
    return Candidate(
        "wikidata",
        item.id,
        next(iter(item.labels.values()), item.matched),
        item.description,
        item.latitude,
        item.longitude,
        exact=any(n and _norm(n) == _norm(query) for n in names),
        distance_km=area.distance(item.latitude, item.longitude) if area and has_point else None,
        url=item.url,
        raw=item,
    )


def _osm_candidate(raw: dict, query: str, area: Area | None) -> Candidate:
    lat, lon = float(raw["lat"]), float(raw["lon"])
    names = [v for k, v in (raw.get("namedetails") or {}).items() if k.startswith("name")]
    names.append(raw.get("name") or "")
    ref = f"{raw.get('osm_type', '')}/{raw.get('osm_id', '')}"
    return Candidate(
        "nominatim",
        ref,
        raw.get("name") or raw.get("display_name", "").split(",")[0],
        raw.get("display_name", ""),
        lat,
        lon,
        exact=any(n and _norm(n) == _norm(query) for n in names),
        distance_km=area.distance(lat, lon) if area else None,
        url=f"https://www.openstreetmap.org/{ref}",
        raw=raw,
    )


def pick(
    options: list[Candidate], area: Area | None, same_place_km: float
) -> tuple[Candidate | None, list[Candidate]]:
    """(the match, or None; the plausible candidates, best first) by the rules above."""
    if area:
        options = [o for o in options if o.distance_km is None or o.distance_km <= area.radius_km]
    options = [o for o in options if o.exact] or options
    options = [o for o in options if o.latitude is not None] or options
    if area:
        options = sorted(
            options, key=lambda o: math.inf if o.distance_km is None else o.distance_km
        )
    if len(options) <= 1:
        return (options[0] if options else None), options
    first = options[0]
    if first.latitude is not None and all(
        o.latitude is not None
        and distance_km(
            GeoPoint(first.latitude, first.longitude), GeoPoint(o.latitude, o.longitude)
        )
        <= same_place_km
        for o in options[1:]
    ):
        return first, options
    return None, options


def _distance_key(c: Candidate) -> float:
    return math.inf if c.distance_km is None else c.distance_km


def _apart(a: Candidate, b: Candidate) -> float:
    return distance_km(GeoPoint(a.latitude, a.longitude), GeoPoint(b.latitude, b.longitude))


def _osm_source(raw: dict, kind: str = "nominatim") -> str:
    return f"{kind}:{raw.get('osm_type', '')}/{raw.get('osm_id', '')}"


class Enricher:
    """Looks rows up one at a time; every answer goes through the clients' on-disk cache."""

    def __init__(
        self,
        wikidata: WikidataClient,
        nominatim: NominatimClient,
        langs: list[str],
        area: Area | None = None,
        refresh: bool = False,
        same_place_km: float = 1.0,
    ) -> None:
        if not langs:
            raise ValueError("at least one language is needed (--lang ko,en)")
        self.wikidata, self.nominatim, self.langs = wikidata, nominatim, langs
        self.area, self.refresh, self.same_place_km = area, refresh, same_place_km

    def run(
        self, catalog: Catalog, progress: Callable[[Landmark], None] | None = None
    ) -> EnrichResult:
        result = EnrichResult(Catalog(), [])
        for lm in catalog:
            if lm.latitude is not None and not self.refresh:
                result.skipped += 1
                result.catalog.add(lm)
            else:
                result.looked_up += 1
                new, review = self.enrich(lm)
                result.catalog.add(new)
                if review is None:
                    result.matched += 1
                else:
                    result.reviews.append(review)
            if progress:
                progress(lm)
        return result

    def enrich(self, lm: Landmark) -> tuple[Landmark, Review | None]:
        """The row with what could be found filled in, and a Review when it needs a person."""
        queries = search_texts(lm.names.get(self.langs[0]) or lm.name)
        given = lm.wikidata and not (self.refresh and "wikidata" in lm.sources)
        if given:
            items = list(self.wikidata.items([lm.wikidata], self.langs).values())
            if not items:
                return lm, Review(lm.id, lm.name, f"Wikidata item {lm.wikidata} does not exist")
            item = replace(items[0], matched=queries[0], match_type="catalog")
            options = [_wikidata_candidate(item, queries[0], None)]
            item_choice, plausible = pick(options, None, self.same_place_km)
        else:
            for query in queries:  # the first wording that finds a plausible place wins
                found = self.wikidata.find(query, self.langs)
                options = [_wikidata_candidate(i, query, self.area) for i in found if i.is_place]
                item_choice, plausible = pick(options, self.area, self.same_place_km)
                if plausible:
                    break
        if item_choice is None and len(plausible) > 1:
            return lm, Review(lm.id, lm.name, "several plausible matches", tuple(plausible[:3]))
        item = item_choice.raw if item_choice else None
        osm = None
        if item is None or item.latitude is None:
            box = self.area.viewbox() if self.area else None
            for query in queries:
                raws = self.nominatim.search(query, self.langs[0], viewbox=box)
                osm_options = [_osm_candidate(r, query, self.area) for r in raws]
                same = [o for o in osm_options if item and _tag(o.raw, "wikidata") == item.id]
                osm, osm_plausible = (
                    (same[0], same) if same else pick(osm_options, self.area, self.same_place_km)
                )
                if osm_plausible:
                    break
            if osm is None:
                problem = (
                    "several plausible matches"
                    if len(osm_plausible) > 1
                    else f"Wikidata item {item.id} has no coordinates and OpenStreetMap no match"
                    if item
                    else "no match"
                )
                shown = tuple(([item_choice] if item_choice else []) + osm_plausible[:3])
                return lm, Review(lm.id, lm.name, problem, shown[:3])
        return self._fill(lm, item, osm.raw if osm else None), None

    def _fill(self, lm: Landmark, item: Item | None, osm: dict | None) -> Landmark:
        values: dict[str, tuple[str, str]] = {}  # field -> (value, source)
        if item is not None and item.latitude is not None:
            lat, lon, coord_source = item.latitude, item.longitude, f"wikidata:{item.id}"
        else:
            assert osm is not None
            lat, lon, coord_source = float(osm["lat"]), float(osm["lon"]), _osm_source(osm)
        first, *others = self.langs
        address_raw = osm if osm is not None else self.nominatim.reverse(lat, lon, first)
        if address_raw:
            kind = "nominatim" if osm is not None else "nominatim-reverse"
            values["address"] = (address_of(address_raw), _osm_source(address_raw, kind))
        for lang in others:
            if raw := self.nominatim.reverse(lat, lon, lang):
                values[f"address_{lang}"] = (
                    address_of(raw),
                    _osm_source(raw, "nominatim-reverse"),
                )
        for lang in self.langs:
            if item is not None and lang in item.labels:
                values[f"name_{lang}"] = (item.labels[lang], f"wikidata:{item.id}")
            elif osm is not None and (name := (osm.get("namedetails") or {}).get(f"name:{lang}")):
                values[f"name_{lang}"] = (name, _osm_source(osm))
        if item is not None:
            values["wikidata"] = (item.id, "wikidata:search")
            if item.website:
                values["url"] = (item.website, f"wikidata:{item.id}")
            if item.country_id:
                labels = self.wikidata.labels([item.country_id], [*self.langs, "en"])
                names = labels.get(item.country_id, {})
                if country := next((names[k] for k in [*self.langs, "en"] if k in names), ""):
                    values["country"] = (country, f"wikidata:{item.country_id}")
        elif osm is not None and (qid := _tag(osm, "wikidata")):
            values["wikidata"] = (qid, _osm_source(osm))
        country = ((address_raw or {}).get("address") or {}).get("country")
        if "country" not in values and country:
            values["country"] = (country, _osm_source(address_raw, "nominatim"))
        return self._apply(lm, lat, lon, coord_source, values)

    def _apply(
        self,
        lm: Landmark,
        lat: float,
        lon: float,
        coord_source: str,
        values: dict[str, tuple[str, str]],
    ) -> Landmark:
        sources = dict(lm.sources)
        names, addresses = dict(lm.names), dict(lm.addresses)
        plain: dict[str, object] = {}

        def may_set(key: str, current: object) -> bool:
            return current in ("", None) or (self.refresh and key in lm.sources)

        if may_set("coordinates", lm.latitude):
            plain.update(latitude=lat, longitude=lon)
            sources["coordinates"] = coord_source
        for key, (value, source) in values.items():
            if key.startswith("name_"):
                target, sub = names, key[5:]
            elif key.startswith("address_"):
                target, sub = addresses, key[8:]
            else:
                target, sub = None, key
            current = target.get(sub, "") if target is not None else getattr(lm, key)
            if not value or not may_set(key, current):
                continue
            if target is None:
                plain[key] = value
            else:
                target[sub] = value
            sources[key] = source
        return replace(lm, names=names, addresses=addresses, sources=sources, **plain)


def _tag(raw: object, key: str) -> str:
    tags = raw.get("extratags") if isinstance(raw, dict) else None
    return str((tags or {}).get(key, "")) if isinstance(tags, dict) else ""


def write_review(reviews: list[Review], path: str | Path) -> None:
    """The rows a person must look at, one line per candidate (at most 3), written atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(REVIEW_COLUMNS)
    for r in reviews:
        if not r.candidates:
            w.writerow([r.id, r.name, r.problem, *[""] * (len(REVIEW_COLUMNS) - 3)])
        for rank, c in enumerate(r.candidates, 1):
            dist = "" if c.distance_km is None else f"{c.distance_km:.1f}"
            lat = "" if c.latitude is None else repr(c.latitude)
            lon = "" if c.longitude is None else repr(c.longitude)
            w.writerow(
                [r.id, r.name, r.problem, rank, c.source, c.ref, c.label, c.description]
                + [lat, lon, dist, c.url]
            )
    write_text_atomic(Path(path), buf.getvalue())


__all__ = ["Area", "Candidate", "EnrichResult", "Enricher", "Review", "parse_near", "write_review"]

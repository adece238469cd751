"""Wikidata look-ups for catalog enrichment: find the item a landmark name means, and read it.

Two calls of the public MediaWiki API (``wbsearchentities`` to find items by label or alias,
``wbgetentities`` to read them) give the item id, coordinates (P625), country (P17), official
website (P856) and labels in the requested languages. SPARQL would do it in one query but its
service is the first to throttle; the API answers in milliseconds and caches well.

Requests go through :class:`~landmark_finder.dataset.http.PoliteClient` (one at a time, a
minimum interval, retries with exponential backoff that honour ``Retry-After``, a descriptive
User-Agent as the Wikimedia User-Agent policy asks) and every answer through a
:class:`~landmark_finder.dataset.lookup_cache.LookupCache`, so a re-run asks nothing twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from landmark_finder.dataset.http import FetchError, PoliteClient
from landmark_finder.dataset.lookup_cache import LookupCache, NoCache, cache_key

DEFAULT_WIKIDATA_API = "https://www.wikidata.org/w/api.php"
#: Items that are not places: disambiguation pages, list articles, Wikimedia categories.
NOT_A_PLACE = frozenset({"Q4167410", "Q13406463", "Q4167836"})
_EARTH = "http://www.wikidata.org/entity/Q2"
_GET_BATCH = 50  # wbgetentities takes at most 50 ids per call


@dataclass(frozen=True)
class Item:
    """What enrichment needs from one Wikidata item."""

    id: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    description: str = ""
    latitude: float | None = None
    longitude: float | None = None
    country_id: str = ""
    website: str = ""
    kinds: frozenset[str] = frozenset()  # P31 "instance of" item ids
    matched: str = ""  # the label or alias the search matched ("" when read by id)
    match_type: str = ""  # "label" or "alias"

    @property
    def url(self) -> str:
        return f"https://www.wikidata.org/wiki/{self.id}"

    @property
    def is_place(self) -> bool:
        return not (self.kinds & NOT_A_PLACE)


def _best_claims(claims: dict, prop: str) -> list[dict]:
    """The property's usable values: preferred rank first, deprecated ones dropped."""
    statements = [s for s in claims.get(prop, []) if s.get("rank") != "deprecated"]
    statements.sort(key=lambda s: s.get("rank") != "preferred")
    out = []
    for s in statements:
        snak = s.get("mainsnak", {})
        if snak.get("snaktype") == "value" and "datavalue" in snak:
            out.append(snak["datavalue"].get("value"))
    return out


def _coordinates(claims: dict) -> tuple[float | None, float | None]:
    for value in _best_claims(claims, "P625"):
        if not isinstance(value, dict) or value.get("globe", _EARTH) != _EARTH:
            continue  # a crater on the Moon is no place to walk to
        try:
            lat, lon = float(value["latitude"]), float(value["longitude"])
        except (KeyError, TypeError, ValueError):
            continue
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            return lat, lon
    return None, None


def _entity_ids(claims: dict, prop: str) -> list[str]:
    return [v["id"] for v in _best_claims(claims, prop) if isinstance(v, dict) and "id" in v]


def item_from_entity(entity: dict, langs: list[str]) -> Item:
    """An Item from one ``wbgetentities`` entity (labels kept for ``langs`` only)."""
    claims = entity.get("claims", {})
    labels = {
        lang: entity["labels"][lang]["value"] for lang in langs if lang in entity.get("labels", {})
    }
    descriptions = entity.get("descriptions", {})
    description = next((descriptions[lang]["value"] for lang in langs if lang in descriptions), "")
    lat, lon = _coordinates(claims)
    countries = _entity_ids(claims, "P17")
    websites = [v for v in _best_claims(claims, "P856") if isinstance(v, str)]
    return Item(
        id=entity["id"],
        labels=labels,
        description=description,
        latitude=lat,
        longitude=lon,
        country_id=countries[0] if countries else "",
        website=websites[0] if websites else "",
        kinds=frozenset(_entity_ids(claims, "P31")),
    )


class WikidataClient:
    """Search and read Wikidata items, politely and through the cache."""

    def __init__(
        self,
        http: PoliteClient,
        cache: LookupCache | NoCache,
        api_url: str = DEFAULT_WIKIDATA_API,
    ) -> None:
        self.http, self.cache, self.api_url = http, cache, api_url
        self.requests_made = 0

    def _call(self, params: dict[str, str]) -> dict:
        params = {**params, "format": "json"}
        key = cache_key(f"wikidata {self.api_url}", params)
        if (cached := self.cache.get(key)) is not None:
            return cached
        self.requests_made += 1
        body, _ = self.http.get(self.api_url, params=params)
        try:
            answer = json.loads(body)
        except ValueError:
            raise FetchError(self.api_url, "the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise FetchError(self.api_url, "unexpected answer (not a JSON object)")
        if "error" in answer:  # MediaWiki reports errors in a 200 answer
            error = answer["error"]
            reason = error.get("info") or error.get("code") if isinstance(error, dict) else error
            raise FetchError(self.api_url, f"Wikidata refused the request: {reason}")
        self.cache.put(key, answer)
        return answer

    def search(self, name: str, lang: str, limit: int = 7) -> list[tuple[str, str, str]]:
        """(item id, matched text, match type) of items whose label or alias matches ``name``."""
        answer = self._call(
            {
                "action": "wbsearchentities",
                "search": name,
                "language": lang,
                "uselang": lang,
                "type": "item",
                "limit": str(limit),
            }
        )
        out = []
        for hit in answer.get("search", []):
            match = hit.get("match", {})
            out.append((hit["id"], match.get("text", hit.get("label", "")), match.get("type", "")))
        return out

    def items(self, ids: list[str], langs: list[str]) -> dict[str, Item]:
        """Read items by id; missing or deleted ids are left out."""
        out: dict[str, Item] = {}
        for start in range(0, len(ids), _GET_BATCH):
            batch = ids[start : start + _GET_BATCH]
            answer = self._call(
                {
                    "action": "wbgetentities",
                    "ids": "|".join(batch),
                    "props": "labels|descriptions|claims",
                    "languages": "|".join(langs),
                }
            )
            for entity_id, entity in answer.get("entities", {}).items():
                if "missing" not in entity and entity.get("type", "item") == "item":
                    out[entity_id] = item_from_entity(entity, langs)
        return out

    def find(self, name: str, langs: list[str]) -> list[Item]:
        """Items matching ``name`` (searched in the first language), in the search's order."""
        hits = self.search(name, langs[0])
        if not hits:
            return []
        read = self.items([h[0] for h in hits], langs)
        return [
            replace(read[item_id], matched=text, match_type=kind)
            for item_id, text, kind in hits
            if item_id in read
        ]

    def labels(self, ids: list[str], langs: list[str]) -> dict[str, dict[str, str]]:
        """Labels of other items (countries), read once per run and cached on disk."""
        return {i: item.labels for i, item in self.items(sorted(set(ids)), langs).items()}


__all__ = ["DEFAULT_WIKIDATA_API", "Item", "WikidataClient", "item_from_entity"]

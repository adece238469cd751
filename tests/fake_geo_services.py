"""A local stand-in for the Wikidata API and Nominatim, serving recorded-style JSON.

There is no network here, so the answers are written by hand in the documented formats of the
real services: MediaWiki ``wbsearchentities`` / ``wbgetentities`` (``format=json``) and
Nominatim ``/search`` and ``/reverse`` (``format=json`` with ``addressdetails``, ``extratags``
and ``namedetails``, as geopy asks). Item ids, OSM ids and some coordinates are illustrative.
The server logs every request (time, path, parameters, User-Agent) so that a test can check the
rate limit and that a second run sends nothing, and can fail chosen requests with a 503.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

OSM_LICENCE = "Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright"


@dataclass
class Logged:
    time: float
    service: str  # "wikidata", "search", "reverse"
    params: dict[str, str]
    user_agent: str
    status: int = 200


@dataclass
class World:
    """What the fake services know."""

    search_hits: dict[str, list[dict]] = field(default_factory=dict)  # wbsearchentities
    entities: dict[str, dict] = field(default_factory=dict)  # wbgetentities
    places: dict[str, list[dict]] = field(default_factory=dict)  # Nominatim /search by q
    # Nominatim /reverse by (lat rounded to 4 places, lon, language)
    addresses: dict[tuple[float, float, str], dict] = field(default_factory=dict)
    fail_first: dict[str, int] = field(default_factory=dict)  # service -> 503s to send first
    log: list[Logged] = field(default_factory=list)

    def requests(self, *services: str) -> list[Logged]:
        return [r for r in self.log if not services or r.service in services]


def search_hit(qid: str, label: str, text: str, kind: str = "label", desc: str = "") -> dict:
    """One ``wbsearchentities`` result as the API returns it."""
    return {
        "id": qid,
        "title": qid,
        "pageid": int(qid[1:]) + 100000,
        "concepturi": f"http://www.wikidata.org/entity/{qid}",
        "repository": "wikidata",
        "url": f"//www.wikidata.org/wiki/{qid}",
        "display": {
            "label": {"value": label, "language": "ko"},
            "description": {"value": desc, "language": "ko"},
        },
        "label": label,
        "description": desc,
        "match": {"type": kind, "language": "ko", "text": text},
    }


def entity(
    qid: str,
    labels: dict[str, str],
    coords: tuple[float, float] | None = None,
    country: str | None = None,
    website: str | None = None,
    kinds: tuple[str, ...] = (),
    descriptions: dict[str, str] | None = None,
) -> dict:
    """One ``wbgetentities`` entity with the claims enrichment reads."""

    def statement(prop: str, datavalue: dict, datatype: str, rank: str = "normal") -> dict:
        return {
            "mainsnak": {
                "snaktype": "value",
                "property": prop,
                "datavalue": datavalue,
                "datatype": datatype,
            },
            "type": "statement",
            "id": f"{qid}$0000-{prop}",
            "rank": rank,
        }

    def item_value(target: str) -> dict:
        value = {"entity-type": "item", "numeric-id": int(target[1:]), "id": target}
        return {"value": value, "type": "wikibase-entityid"}

    claims: dict[str, list] = {}
    if coords:
        value = {
            "latitude": coords[0],
            "longitude": coords[1],
            "altitude": None,
            "precision": 0.0001,
            "globe": "http://www.wikidata.org/entity/Q2",
        }
        claims["P625"] = [
            statement("P625", {"value": value, "type": "globecoordinate"}, "globe-coordinate")
        ]
    if country:
        claims["P17"] = [statement("P17", item_value(country), "wikibase-item")]
    if website:
        claims["P856"] = [statement("P856", {"value": website, "type": "string"}, "url")]
    if kinds:
        claims["P31"] = [statement("P31", item_value(k), "wikibase-item") for k in kinds]
    return {
        "pageid": int(qid[1:]) + 100000,
        "ns": 0,
        "title": qid,
        "lastrevid": 2000000000,
        "modified": "2025-01-01T00:00:00Z",
        "type": "item",
        "id": qid,
        "labels": {k: {"language": k, "value": v} for k, v in labels.items()},
        "descriptions": {k: {"language": k, "value": v} for k, v in (descriptions or {}).items()},
        "claims": claims,
    }


def place(
    osm: str,
    lat: float,
    lon: float,
    name: str,
    address: dict[str, str],
    extratags: dict[str, str] | None = None,
    names: dict[str, str] | None = None,
    kind: tuple[str, str] = ("tourism", "attraction"),
) -> dict:
    """One Nominatim result (``format=json``); display_name is built as Nominatim builds it."""
    osm_type, osm_id = osm.split("/")
    parts = [v for k, v in address.items() if k not in ("country_code", "ISO3166-2-lvl4")]
    out = {
        "place_id": abs(hash(osm)) % 10**8,
        "licence": OSM_LICENCE,
        "osm_type": osm_type,
        "osm_id": int(osm_id),
        "lat": f"{lat:.7f}",
        "lon": f"{lon:.7f}",
        "class": kind[0],
        "type": kind[1],
        "place_rank": 30,
        "importance": 0.35,
        "addresstype": kind[0],
        "name": name,
        "display_name": ", ".join(parts),
        "address": address,
        "boundingbox": [
            f"{lat - 0.001:.7f}",
            f"{lat + 0.001:.7f}",
            f"{lon - 0.001:.7f}",
            f"{lon + 0.001:.7f}",
        ],
    }
    if extratags is not None:
        out["extratags"] = extratags
    if names is not None:
        out["namedetails"] = names
    return out


class _Handler(BaseHTTPRequestHandler):
    world: World

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        service = {"/w/api.php": "wikidata", "/search": "search", "/reverse": "reverse"}.get(
            url.path, "other"
        )
        w = self.world
        entry = Logged(time.monotonic(), service, params, self.headers.get("User-Agent", ""))
        w.log.append(entry)
        if w.fail_first.get(service, 0) > 0:
            w.fail_first[service] -= 1
            entry.status = 503
            return self._send(503, {"error": "Service Unavailable"})
        if service == "wikidata":
            return self._send(200, self._wikidata(params))
        if service == "search":
            return self._send(200, w.places.get(params.get("q", ""), []))
        if service == "reverse":
            key = (
                round(float(params["lat"]), 4),
                round(float(params["lon"]), 4),
                params.get("accept-language", ""),
            )
            return self._send(200, w.addresses.get(key, {"error": "Unable to geocode"}))
        entry.status = 404
        self._send(404, {"error": "not found"})

    def _wikidata(self, params: dict[str, str]) -> dict:
        w = self.world
        if params.get("action") == "wbsearchentities":
            hits = w.search_hits.get(params.get("search", ""), [])
            return {
                "searchinfo": {"search": params.get("search", "")},
                "search": hits,
                "success": 1,
            }
        if params.get("action") == "wbgetentities":
            langs = params.get("languages", "").split("|")
            out = {}
            for qid in params.get("ids", "").split("|"):
                if qid not in w.entities:
                    out[qid] = {"id": qid, "missing": ""}
                    continue
                e = json.loads(json.dumps(w.entities[qid]))
                e["labels"] = {k: v for k, v in e["labels"].items() if k in langs}
                e["descriptions"] = {k: v for k, v in e["descriptions"].items() if k in langs}
                out[qid] = e
            return {"entities": out, "success": 1}
        return {"error": {"code": "badvalue", "info": "Unrecognized value for parameter action"}}


class FakeGeoServices:
    """``with FakeGeoServices(world) as s:`` serves ``world`` on a free loopback port."""

    def __init__(self, world: World) -> None:
        handler = type("Handler", (_Handler,), {"world": world})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.world = world
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGeoServices:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

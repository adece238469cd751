"""`catalog enrich` against a local stand-in for Wikidata and Nominatim (no network here).

A sample of the Seoul label list (the real file, headerless ``index,name``) is enriched: four
names that Wikidata and OpenStreetMap know, one with no match anywhere and one that names two
temples in Seoul. Then: the review file lists exactly the two problem rows, the Nominatim
requests keep one second apart (from the server's clock), a failed request is retried, and a
second run sends no request at all. A second test enriches bare names of the Indian gallery,
builds an index with its photos and reads the landmarks back from the web API.
"""

from __future__ import annotations

import csv
import json
import re

import pytest
from typer.testing import CliRunner

from conftest import INDIAN, SHARED, SMALL_LANDMARKS
from fake_geo_services import FakeGeoServices, World, entity, place, search_hit
from landmark_finder.cli.main import app as cli_app
from landmark_finder.core.catalog import load_catalog

SEOUL_LABELS = SHARED / "catalogs" / "seoul-392-labels.csv"
KOREA = "Q884"
SAMPLE = [
    "경복궁",
    "N 서울타워",
    "숭례문",
    "광장시장",
    "대각사",
    "강남스타일 말춤 손목 조형물",
]
CONTACT = "tester@example.org"


def korean_address(road: str, number: str, dong: str, gu: str, postcode: str, lang: str) -> dict:
    if lang == "en":
        return {
            "house_number": number,
            "road": road,
            "quarter": dong,
            "borough": gu,
            "city": "Seoul",
            "postcode": postcode,
            "country": "South Korea",
            "country_code": "kr",
        }
    return {
        "house_number": number,
        "road": road,
        "quarter": dong,
        "borough": gu,
        "city": "서울",
        "postcode": postcode,
        "country": "대한민국",
        "country_code": "kr",
    }


def seoul_world() -> World:
    w = World()
    w.entities[KOREA] = entity(KOREA, {"ko": "대한민국", "en": "South Korea"})
    # Seoul itself, for --near "Seoul"
    w.places["Seoul"] = [
        place(
            "relation/2297418",
            37.5666791,
            126.9782914,
            "서울",
            {"city": "서울", "country": "대한민국", "country_code": "kr"},
            kind=("boundary", "administrative"),
        )
    ]
    w.places["Seoul"][0]["boundingbox"] = ["37.4285424", "37.7014794", "126.7644328", "127.1837702"]
    known = [  # qid, ko, en, coordinates, road, number, dong, gu, postcode, website
        (
            "Q485385",
            "경복궁",
            "Gyeongbokgung",
            (37.5796, 126.977),
            "사직로",
            "161",
            "세종로",
            "종로구",
            "03045",
            "https://www.royalpalace.go.kr",
        ),
        (
            "Q497296",
            "N서울타워",
            "N Seoul Tower",
            (37.5512, 126.9882),
            "남산공원길",
            "105",
            "용산동2가",
            "용산구",
            "04340",
            None,
        ),
        (
            "Q215812",
            "숭례문",
            "Sungnyemun",
            (37.56, 126.9753),
            "세종대로",
            "40",
            "남대문로4가",
            "중구",
            "04529",
            None,
        ),
    ]
    for qid, ko, en, coords, road, number, dong, gu, postcode, website in known:
        w.entities[qid] = entity(qid, {"ko": ko, "en": en}, coords, KOREA, website)
        for lang in ("ko", "en"):
            addr = korean_address(road, number, dong, gu, postcode, lang)
            name = ko if lang == "ko" else en
            w.addresses[(*coords, lang)] = place(
                f"way/{int(qid[1:]) * 7}", *coords, name, {"tourism": name, **addr}
            )
    w.search_hits["경복궁"] = [
        search_hit("Q485385", "경복궁", "경복궁", desc="조선의 법궁"),
        # a prefix match, 500 m away: not the palace, and not an exact match
        search_hit("Q495935", "경복궁역", "경복궁역", desc="서울 지하철 3호선의 역"),
    ]
    w.entities["Q495935"] = entity(
        "Q495935", {"ko": "경복궁역", "en": "Gyeongbokgung station"}, (37.5757, 126.9735), KOREA
    )
    # the label has no space; the list's name matches an alias
    w.search_hits["N 서울타워"] = [search_hit("Q497296", "N서울타워", "N 서울타워", kind="alias")]
    w.search_hits["숭례문"] = [search_hit("Q215812", "숭례문", "숭례문", desc="서울의 성문")]
    # Wikidata knows the market but has no coordinates: OpenStreetMap gives them, and its
    # wikidata tag shows it is the same place
    w.search_hits["광장시장"] = [search_hit("Q16170635", "광장시장", "광장시장", desc="시장")]
    w.entities["Q16170635"] = entity(
        "Q16170635", {"ko": "광장시장", "en": "Gwangjang Market"}, None, KOREA
    )
    market = (37.5700, 126.9996)
    w.places["광장시장"] = [
        place(
            "way/229817300",
            *market,
            "광장시장",
            {
                "amenity": "광장시장",
                **korean_address("창경궁로", "88", "종로5가", "종로구", "03195", "ko"),
            },
            extratags={"wikidata": "Q16170635"},
            names={"name": "광장시장", "name:ko": "광장시장", "name:en": "Gwangjang Market"},
            kind=("amenity", "marketplace"),
        )
    ]
    w.addresses[(*market, "en")] = place(
        "way/229817300",
        *market,
        "Gwangjang Market",
        {
            "amenity": "Gwangjang Market",
            **korean_address(
                "Changgyeonggung-ro", "88", "Jongno 5(o)-ga", "Jongno-gu", "03195", "en"
            ),
        },
    )
    # two temples of that name in Seoul, 6 km apart: a person must choose
    w.search_hits["대각사"] = [
        search_hit("Q12599830", "대각사", "대각사", desc="서울 종로구의 절"),
        search_hit("Q12599831", "대각사", "대각사", desc="서울 은평구의 절"),
    ]
    w.entities["Q12599830"] = entity(
        "Q12599830",
        {"ko": "대각사"},
        (37.5762, 126.9925),
        KOREA,
        descriptions={"ko": "종로구의 절"},
    )
    w.entities["Q12599831"] = entity(
        "Q12599831",
        {"ko": "대각사"},
        (37.6195, 126.9299),
        KOREA,
        descriptions={"ko": "은평구의 절"},
    )
    return w


@pytest.fixture
def seoul_sample(tmp_path):
    if not SEOUL_LABELS.is_file():
        pytest.skip("../shared/landmarks is not present")
    lines = SEOUL_LABELS.read_text("utf-8").splitlines()
    picked = [line for line in lines if line.split(",", 1)[1] in SAMPLE]
    assert len(picked) == len(SAMPLE)
    path = tmp_path / "seoul-sample.csv"
    path.write_text("\n".join(picked) + "\n", "utf-8")
    return path


def enrich(services, catalog, out, cache, *extra):
    args = ["catalog", "enrich", str(catalog), "--out", str(out), "--cache", str(cache)]
    args += ["--wikidata-url", f"{services.url}/w/api.php", "--nominatim-url", services.url]
    args += ["--contact", CONTACT, "--wikidata-interval", "0", "-q", *extra]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    return result


def test_enrich_seoul_sample(seoul_sample, tmp_path):
    world = seoul_world()
    world.fail_first["reverse"] = 1  # one 503: retried after a back-off, not lost
    out, review, cache = tmp_path / "enriched.csv", tmp_path / "review.csv", tmp_path / "c.sqlite"
    with FakeGeoServices(world) as services:
        first = enrich(
            services,
            seoul_sample,
            out,
            cache,
            "--lang",
            "ko,en",
            "--near",
            "Seoul",
            "--review",
            str(review),
            "--backoff",
            "1",
        )
        sent = len(world.log)

        catalog = load_catalog(out)
        assert len(catalog) == len(SAMPLE)
        expected = {  # name -> (wikidata, name_en, coordinates source)
            "경복궁": ("Q485385", "Gyeongbokgung", "wikidata:Q485385"),
            "N 서울타워": ("Q497296", "N Seoul Tower", "wikidata:Q497296"),
            "숭례문": ("Q215812", "Sungnyemun", "wikidata:Q215812"),
            "광장시장": ("Q16170635", "Gwangjang Market", "nominatim:way/229817300"),
        }
        for name, (qid, name_en, coord_source) in expected.items():
            lm = catalog[name]
            assert lm.latitude is not None and lm.longitude is not None, name
            assert lm.wikidata == qid and lm.names["en"] == name_en, name
            assert lm.names["ko"] and lm.address and lm.addresses["en"], name
            assert lm.country == "대한민국"
            assert lm.sources["coordinates"] == coord_source
            assert lm.sources["address"].startswith("nominatim")
            assert lm.sources["name_en"] and lm.sources["wikidata"]
        gyeongbok = catalog["경복궁"]
        assert (gyeongbok.latitude, gyeongbok.longitude) == (37.5796, 126.977)
        assert gyeongbok.address == "161, 사직로, 세종로, 종로구, 서울, 03045, 대한민국"
        assert gyeongbok.addresses["en"] == "161, 사직로, 세종로, 종로구, Seoul, 03045, South Korea"
        assert gyeongbok.url == "https://www.royalpalace.go.kr"
        assert catalog["N 서울타워"].names["ko"] == "N서울타워"  # Wikidata's label, kept apart
        assert catalog["N 서울타워"].name == "N 서울타워"  # the user's name is never replaced
        for name in ("대각사", "강남스타일 말춤 손목 조형물"):  # never guessed
            lm = catalog[name]
            assert lm.latitude is None and not lm.wikidata and not lm.address and not lm.sources

        with review.open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert {r["id"] for r in rows} == {"대각사", "강남스타일 말춤 손목 조형물"}
        temple = [r for r in rows if r["id"] == "대각사"]
        assert [r["ref"] for r in temple] == ["Q12599830", "Q12599831"]  # nearer Seoul first
        assert all(r["problem"] == "several plausible matches" for r in temple)
        assert all(
            r["latitude"] and r["url"].startswith("https://www.wikidata.org/") for r in temple
        )
        (nothing,) = [r for r in rows if r["id"] != "대각사"]
        assert nothing["problem"] == "no match" and not nothing["ref"]

        # the services' rules: 1 request per second to Nominatim, our User-Agent with contact
        nominatim = world.requests("search", "reverse")
        times = [r.time for r in nominatim]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert len(nominatim) >= 8 and min(gaps) >= 0.95, gaps
        assert sum(r.status == 503 for r in nominatim) == 1
        assert all(CONTACT in r.user_agent and "landmark-finder" in r.user_agent for r in world.log)
        assert all(r.params.get("format") == "json" for r in world.log)
        assert "requests: Wikidata" in first.output

        # a second run asks nothing and writes the same catalog
        second = enrich(
            services,
            seoul_sample,
            tmp_path / "again.csv",
            cache,
            "--lang",
            "ko,en",
            "--near",
            "Seoul",
            "--review",
            str(tmp_path / "again-review.csv"),
        )
        assert len(world.log) == sent
        assert "requests: Wikidata 0, Nominatim 0" in second.output
        assert (tmp_path / "again.csv").read_text("utf-8") == out.read_text("utf-8")

    # the enriched catalog validates and shows as a table and a map
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["catalog", "validate", str(out)])
    assert ok.exit_code == 0 and "4 with coordinates" in ok.output, ok.output
    shown = runner.invoke(cli_app, ["catalog", "show", str(out), "--json"])
    rows = [json.loads(line) for line in shown.output.splitlines()]
    assert {r["id"]: r.get("wikidata") for r in rows}["숭례문"] == "Q215812"
    drawn = runner.invoke(cli_app, ["catalog", "show", str(out), "--map", str(tmp_path / "m.png")])
    assert drawn.exit_code == 0, drawn.output
    from conftest import assert_png

    assert_png(tmp_path / "m.png", 300)


def test_refused_and_unreachable_services_are_one_line(seoul_sample, tmp_path):
    world = seoul_world()
    world.fail_first["wikidata"] = 99
    with FakeGeoServices(world) as services:
        args = ["catalog", "enrich", str(seoul_sample), "--out", str(tmp_path / "o.csv")]
        args += ["--wikidata-url", f"{services.url}/w/api.php", "--nominatim-url", services.url]
        args += ["--no-cache", "--backoff", "0", "-q", "--lang", "ko"]
        r = CliRunner().invoke(cli_app, args)
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output
    assert "HTTP 503" in r.output
    assert not (tmp_path / "o.csv").exists()
    bad = CliRunner().invoke(
        cli_app,
        [
            "catalog",
            "enrich",
            str(seoul_sample),
            "-o",
            str(tmp_path / "x.csv"),
            "--near",
            "91,0,5",
            "--no-cache",
            "-q",
        ],
    )
    assert bad.exit_code == 2 and "--near" in bad.output


def indian_world(catalog) -> World:
    """Recorded-style answers for the small gallery's landmarks (coordinates and addresses as
    in the shared catalog; item ids illustrative)."""
    w = World()
    w.entities["Q668"] = entity("Q668", {"en": "India", "hi": "भारत"})
    for n, lm in enumerate(catalog):
        qid = f"Q{900000 + n}"
        # "Golden Temple (Harmandir Sahib)" is found as "Golden Temple"
        short = re.sub(r"\s*\(.*\)", "", lm.name)
        w.search_hits[short] = [search_hit(qid, short, short)]
        w.entities[qid] = entity(qid, {"en": lm.name}, (lm.latitude, lm.longitude), "Q668")
        w.addresses[(round(lm.latitude, 4), round(lm.longitude, 4), "en")] = place(
            f"way/{1000 + n}",
            lm.latitude,
            lm.longitude,
            lm.name,
            {"tourism": lm.name, "road": lm.address, "country": "India", "country_code": "in"},
        )
    return w


@pytest.mark.slow  # builds an index and starts the web app
def test_enriched_catalog_builds_an_index_and_shows_in_the_web_app(
    small_gallery, small_index, tmp_path
):
    # small_index: the session's index of the same photos; depending on it reuses the exported
    # ONNX graph, so this test builds its own index without exporting the network again.
    from fastapi.testclient import TestClient

    from landmark_finder.recognition.recognizer import Recognizer
    from landmark_finder.web import create_app

    real = load_catalog(INDIAN / "catalog.csv")
    small = [real[i] for i in SMALL_LANDMARKS]
    bare = tmp_path / "names.csv"
    bare.write_text("id,name\n" + "".join(f"{lm.id},{lm.name}\n" for lm in small), "utf-8")
    world = indian_world(small)
    out = tmp_path / "enriched.csv"
    with FakeGeoServices(world) as services:
        enrich(services, bare, out, tmp_path / "c.sqlite", "--lang", "en")
    enriched = load_catalog(out)
    for lm in small:
        got = enriched[lm.id]
        assert (got.latitude, got.longitude) == (lm.latitude, lm.longitude)
        assert got.wikidata.startswith("Q") and got.country == "India"
        assert lm.address in got.address

    index = tmp_path / "index"
    built = CliRunner().invoke(
        cli_app,
        [
            "index",
            "build",
            str(small_gallery),
            "--catalog",
            str(out),
            "--out",
            str(index),
            "--backbone",
            "efficientnet-lite0",
            "--size",
            "224",
            "--local-features",
            "none",
            "-q",
        ],
    )
    assert built.exit_code == 0, built.output
    client = TestClient(create_app(Recognizer.open(index)))
    listed = {lm["id"]: lm for lm in client.get("/api/landmarks").json()}
    assert set(listed) == set(SMALL_LANDMARKS)
    for lm in small:  # what the page's landmark map draws: coordinates, name, Wikidata id
        row = listed[lm.id]
        assert (row["latitude"], row["longitude"]) == (lm.latitude, lm.longitude)
        assert row["wikidata"] == enriched[lm.id].wikidata and row["photo_count"] == 8
    assert "static/catalog.js" in client.get("/").text

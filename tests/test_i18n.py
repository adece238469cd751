"""Interface languages: every message in the code has a Korean translation, language choice
(CLI --lang/LANG, Accept-Language), and names/addresses in the reader's language."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import INDIAN
from landmark_finder import i18n
from landmark_finder.core.catalog import Landmark, load_catalog, save_catalog
from landmark_finder.i18n.export import messages_json
from landmark_finder.i18n.sources import extract, missing

ROOT = Path(__file__).resolve().parents[1]
KOREAN_NAMES = {"taj_mahal": "타지마할", "charminar": "차르미나르", "india_gate": "인디아 게이트"}
TAJ_ADDRESS_KO = "인도 우타르프라데시주 아그라"


@pytest.fixture(autouse=True)
def english_after():
    yield
    i18n.set_language("en")


def _po(lang: str):
    from babel.messages.pofile import read_po

    with (i18n.LOCALE_DIR / lang / "LC_MESSAGES" / f"{i18n.DOMAIN}.po").open("rb") as f:
        return read_po(f)


# --- the catalogs cover the code ------------------------------------------------------------


def test_every_message_in_the_code_has_a_korean_translation():
    """Extract the messages (Python, the page's JavaScript and HTML) with Babel, as
    ``make messages`` does, and compare with the Korean catalog."""
    template = extract(ROOT)
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    # the extraction really sees all three kinds of source
    assert {"This place is '{name}'", "This is {name}", "Choose a photo"} <= ids
    assert "{n} reference photo" in ids  # a plural (ngettext) message
    gaps = missing(template, _po("ko"))
    assert not gaps, "messages without a Korean translation (run `make messages`, translate):\n" + (
        "\n".join(gaps)
    )


def test_missing_translation_is_detected(tmp_path):
    """The check above is real: a catalog lacking one message fails it."""
    template = extract(ROOT)
    ko = _po("ko")
    del ko["Not a landmark I know"]
    assert missing(template, ko) == ["Not a landmark I know"]


def test_placeholders_survive_translation():
    """A translation keeps every {placeholder} of its message (else .format breaks)."""
    import re

    for m in _po("ko"):
        if not m.id:
            continue
        ids = [m.id] if isinstance(m.id, str) else list(m.id)
        strings = [m.string] if isinstance(m.string, str) else list(m.string)
        want = set(re.findall(r"\{\w+\}", ids[0]))
        for s in strings:
            assert set(re.findall(r"\{\w+\}", s)) <= want | {"{n}"}, (m.id, s)


# --- choosing the language ------------------------------------------------------------------


def test_language_from_environment_and_headers():
    assert i18n.from_environment({"LANG": "ko_KR.UTF-8"}) == "ko"
    assert i18n.from_environment({"LANGUAGE": "fr:ko", "LANG": "en_US.UTF-8"}) == "ko"
    assert i18n.from_environment({"LANG": "C.UTF-8"}) == "en"
    assert i18n.from_environment({}) == "en"
    assert i18n.parse_accept_language("en;q=0.5, ko-KR, ko;q=0.9") == ["ko-KR", "ko", "en"]
    assert i18n.negotiate(i18n.parse_accept_language("fr-FR,ko;q=0.8")) == "ko"
    assert i18n.negotiate(["de"]) == "en"
    assert i18n.languages() == ["en", "ko"]


def test_korean_plural_and_sentence():
    i18n.set_language("ko")
    assert i18n._("This place is '{name}'").format(name="남산서울타워") == (
        "이곳은 '남산서울타워' 입니다"
    )
    assert i18n.ngettext("{n} reference photo", "{n} reference photos", 1) == "참조 사진 {n}장"
    assert i18n.ngettext("{n} reference photo", "{n} reference photos", 5) == "참조 사진 {n}장"
    i18n.set_language("en")
    assert i18n.ngettext("{n} reference photo", "{n} reference photos", 1) == "{n} reference photo"
    assert i18n.ngettext("{n} reference photo", "{n} reference photos", 2).endswith("photos")


def test_messages_json_for_the_page():
    ko = messages_json("ko-KR")
    assert ko["lang"] == "ko" and ko["plural"] == {"other": 0}
    assert ko["messages"]["This is {name}"] == "이곳은 '{name}' 입니다"
    assert ko["messages"]["{n} reference photo"] == ["참조 사진 {n}장"]
    assert {"code": "ko", "name": "한국어"} in ko["languages"]
    en = messages_json("xx")
    assert en["lang"] == "en" and en["messages"] == {} and en["plural"] == {"one": 0, "other": 1}


# --- names and addresses in the reader's language -------------------------------------------


def test_catalog_names_and_addresses_by_language(tmp_path):
    path = tmp_path / "seoul.csv"
    path.write_text(
        "id,name,address,latitude,longitude,name_ko,name_en,address_ko\n"
        "namsan,N Seoul Tower,105 Namsangongwon-gil,37.5512,126.9882,남산서울타워,N Seoul Tower,"
        "서울 용산구 남산공원길 105\n"
        "gyeongbokgung,경복궁,,37.5796,126.977,,Gyeongbokgung Palace,\n",
        encoding="utf-8",
    )
    cat = load_catalog(path)
    tower, palace = cat["namsan"], cat["gyeongbokgung"]
    assert (
        tower.name_in("ko") == "남산서울타워"
        and tower.address_in("ko") == "서울 용산구 남산공원길 105"
    )
    assert tower.localized("ko").name == "남산서울타워" and tower.localized(None) is tower
    assert palace.name_in("en") == "Gyeongbokgung Palace" and palace.name_in("ko") == "경복궁"
    assert palace.name_in("hi") == "경복궁"  # no such column: the catalog's name
    save_catalog(cat, tmp_path / "again.csv")
    assert load_catalog(tmp_path / "again.csv") == cat


@pytest.fixture(scope="module")
def korean_index(small_index, tmp_path_factory) -> Path:
    """The small index whose catalog has name_ko columns (and the Taj Mahal's address_ko)."""
    from landmark_finder.core.catalog import Catalog
    from landmark_finder.recognition.index import Index

    out = tmp_path_factory.mktemp("i18n") / "index"
    shutil.copytree(small_index, out)
    idx = Index.open(out)
    idx.catalog = Catalog(
        dataclasses.replace(
            lm,
            names={"ko": KOREAN_NAMES[lm.id]},
            addresses={"ko": TAJ_ADDRESS_KO} if lm.id == "taj_mahal" else {},
        )
        if lm.id in KOREAN_NAMES
        else lm
        for lm in idx.catalog
    )
    idx.save(out)
    return out


def _taj() -> Path:
    return sorted((INDIAN / "queries" / "taj_mahal").glob("*.jpg"))[0]


def test_recognize_lang_ko_prints_korean(korean_index):
    from landmark_finder.cli.main import app

    runner = CliRunner()
    r = runner.invoke(app, ["recognize", str(korean_index), str(_taj()), "--lang", "ko"])
    assert r.exit_code == 0, r.output
    assert f"{_taj().name}: 이곳은 '타지마할' 입니다 (신뢰도 " in r.stdout
    assert TAJ_ADDRESS_KO in r.stdout
    # --json: the catalog's own name/address, unchanged; `names` added
    r = runner.invoke(app, ["recognize", str(korean_index), str(_taj()), "--lang", "ko", "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout.splitlines()[0])
    assert row["landmark"]["name"] == "Taj Mahal" and row["landmark"]["names"] == {"ko": "타지마할"}
    assert row["landmark"]["address"] != TAJ_ADDRESS_KO
    assert all("names" in c for c in row["candidates"])


def test_cli_language_from_lang_environment(tmp_path):
    """A real process of the command: LANG=ko_KR.UTF-8 is enough for Korean messages."""
    env = {"LANG": "ko_KR.UTF-8", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "landmark_finder.cli.main", "recognize", str(tmp_path / "none")]
    cmd.append(str(tmp_path / "x.jpg"))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and p.stderr.startswith("오류: "), (p.stdout, p.stderr)
    env["LANG"] = "C.UTF-8"
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and p.stderr.startswith("error: "), p.stderr
    p = subprocess.run([*cmd, "--lang", "ko"], capture_output=True, text=True, env=env, timeout=300)
    assert p.stderr.startswith("오류: "), p.stderr


def test_web_api_in_the_readers_language(korean_index):
    from fastapi.testclient import TestClient

    from landmark_finder.web.app import create_app

    with TestClient(create_app(korean_index)) as c:
        rows = {lm["id"]: lm for lm in c.get("/api/landmarks", params={"lang": "ko"}).json()}
        assert rows["taj_mahal"]["name"] == "타지마할"
        assert rows["taj_mahal"]["address"] == TAJ_ADDRESS_KO
        assert rows["taj_mahal"]["names"] == {"ko": "타지마할"}
        assert rows["hawa_mahal"]["name"] == "Hawa Mahal"  # no name_ko: the catalog's name
        # the browser's Accept-Language, when no ?lang
        rows = c.get("/api/landmarks", headers={"Accept-Language": "ko-KR,ko;q=0.9"}).json()
        assert {lm["id"]: lm["name"] for lm in rows}["charminar"] == "차르미나르"
        # no language asked: the catalog's own columns, as before
        rows = {lm["id"]: lm for lm in c.get("/api/landmarks").json()}
        assert rows["taj_mahal"]["name"] == "Taj Mahal"
        detail = c.get("/api/landmarks/taj_mahal", params={"lang": "ko"}).json()
        assert detail["name"] == "타지마할"
        with _taj().open("rb") as f:
            r = c.post(
                "/api/recognize", params={"lang": "ko"}, files={"photo": ("t.jpg", f, "image/jpeg")}
            )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (
            body["landmark"]["name"] == "타지마할" and body["landmark"]["names"]["ko"] == "타지마할"
        )
        assert body["landmark"]["address"] == TAJ_ADDRESS_KO
        m = c.get("/api/messages", headers={"Accept-Language": "ko"}).json()
        assert (
            m["lang"] == "ko"
            and m["messages"]["Not a landmark I know"] == "알고 있는 랜드마크가 아닙니다"
        )
        assert c.get("/api/messages", params={"lang": "en"}).json()["messages"] == {}
        # a malformed language is a 422 and the server goes on
        assert c.get("/api/landmarks", params={"lang": "../../etc"}).status_code == 422
        assert c.get("/health").status_code == 200


def test_landmark_localized_keeps_other_languages():
    lm = Landmark("x", "Name", "Addr", names={"ko": "이름", "hi": "नाम"}, addresses={"ko": "주소"})
    ko = lm.localized("ko")
    assert (ko.name, ko.address, ko.names) == ("이름", "주소", lm.names)
    assert lm.localized("hi").name == "नाम" and lm.localized("hi").address == "Addr"


# --- the other command groups speak the reader's language ------------------------------------


def test_index_commands_in_korean(korean_index, tmp_path):
    """`index info` and `index compact` with --lang ko: Korean labels and summaries, plural forms
    by the Korean rule; without --lang (LANG unset in the test) the English text is unchanged."""
    from landmark_finder.cli.main import app

    runner = CliRunner()
    index = tmp_path / "index"
    shutil.copytree(korean_index, index)
    r = runner.invoke(app, ["index", "info", str(index), "--lang", "ko"])
    assert r.exit_code == 0, r.output
    assert "사진이 있는 랜드마크" in r.stdout and "세그먼트" in r.stdout
    r = runner.invoke(app, ["index", "compact", str(index), "--lang", "ko"])
    assert r.exit_code == 0, r.output
    assert "세그먼트" in r.stdout and "개를 1개로 합쳤습니다 (사진 40장)" in r.stdout
    r = runner.invoke(app, ["index", "compact", str(index), "--lang", "en"])
    assert r.exit_code == 0 and "Compacted 1 segment into 1 (40 photos)." in r.stdout, r.output
    r = runner.invoke(app, ["index", "remove", str(index), "--lang", "ko"])
    assert r.exit_code == 2 and "오류: 지울 것이 없습니다" in r.output


def test_dataset_and_catalog_commands_in_korean(small_gallery, tmp_path):
    from landmark_finder.cli.main import app

    runner = CliRunner()
    args = ["dataset", "stats", str(small_gallery), "--no-chart", "--no-duplicates", "-q"]
    r = runner.invoke(app, [*args, "--lang", "ko"])
    assert r.exit_code == 0, r.output
    assert "랜드마크별 사진 수" in r.stdout and "불균형 (최대 / 최소)" in r.stdout
    r = runner.invoke(app, ["dataset", "stats", str(tmp_path / "none"), "--lang", "ko"])
    assert r.exit_code == 2 and "폴더가 아닙니다" in r.output
    r = runner.invoke(app, ["catalog", "validate", str(INDIAN / "catalog.csv"), "--lang", "ko"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())  # Rich wraps long lines
    assert ": 정상, 랜드마크 24곳, 좌표 있음 24곳, 주소 있음 " in text

"""End to end: `landmark-finder serve` on loopback, the page in a real headless Chromium.

Needs Debian's `chromium` and `fonts-noto-cjk` (apt) and the Python `playwright` package; the
browser is Debian's, never one downloaded by `playwright install`. Every request that is not to
the loopback server is aborted, so the map must stand on the bundled world outline.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image

from conftest import INDIAN

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Screenshots are saved in the test's tmp dir; set LANDMARK_FINDER_SCREENSHOTS=docs/screenshots
# to refresh the copies kept in the repository (a plain test run leaves the work tree clean).
SCREENSHOTS = os.environ.get("LANDMARK_FINDER_SCREENSHOTS")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
TIMEOUT_MS = 90_000  # recognition on a busy 2-core machine; nothing here measures speed

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium is not installed "
    "(/usr/bin/chromium): apt-get install -y chromium fonts-noto-cjk",
)


def query(landmark: str, i: int = 0) -> Path:
    return sorted((INDIAN / "queries" / landmark).glob("*.jpg"))[i]


KOREAN_NAMES = {
    "taj_mahal": "타지마할",
    "charminar": "차르미나르",
    "india_gate": "인디아 게이트",
    "golden_temple": "황금 사원",
    "hawa_mahal": "하와 마할",
}
TAJ_ADDRESS_KO = "인도 우타르프라데시주 아그라"
TAJ_ADDRESS_EN = "Dharmapuri, Forest Colony, Tajganj, Agra, Uttar Pradesh 282001, India"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def korean_index(small_index, tmp_path_factory) -> Path:
    """The small index with Korean names (``name_ko``) and the Taj Mahal's Korean address
    (``address_ko``): a Korean reader sees Hangul, an English reader the catalog's ``name``."""
    from landmark_finder.core.catalog import Catalog
    from landmark_finder.recognition.index import Index

    out = tmp_path_factory.mktemp("e2e") / "index"
    shutil.copytree(small_index, out)
    idx = Index.open(out)
    idx.catalog = Catalog(
        dataclasses.replace(
            lm,
            names={"ko": KOREAN_NAMES[lm.id]},
            addresses={"ko": TAJ_ADDRESS_KO} if lm.id == "taj_mahal" else {},
            wikidata="Q9141" if lm.id == "taj_mahal" else "",
        )
        if lm.id in KOREAN_NAMES
        else lm
        for lm in idx.catalog
    )
    idx.save(out)
    return out


@pytest.fixture(scope="module")
def server(korean_index, tmp_path_factory):
    """The real CLI command in a subprocess, on a free loopback port."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "landmark_finder.cli.main",
                "serve",
                str(korean_index),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--max-upload-mb",
                "5",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited ({proc.returncode}):\n{log.read_text()}")
            try:
                with urllib.request.urlopen(base + "health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{log.read_text()}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(
    browser, base: str, width: int, height: int, blocked: list[str], locale: str = "en-US"
):
    context = browser.new_context(viewport={"width": width, "height": height}, locale=locale)

    def only_loopback(route):
        host = urlparse(route.request.url).hostname or ""
        if host in LOOPBACK or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(base)
    return context, page


def with_wrong_gps(path: Path) -> bytes:
    """The photo with an EXIF GPS tag in Seoul: a tag ~4,700 km off, as happens."""
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (37.0, 33.0, 5.0), 3: "E", 4: (126.0, 58.0, 40.0)}
    buf = io.BytesIO()
    Image.open(path).save(buf, "JPEG", exif=exif, quality=92)
    return buf.getvalue()


def send_file_event(page, kind: str, data: bytes, name: str) -> None:
    """Drop or paste a file the way a browser delivers it (DataTransfer with a File)."""
    page.evaluate(
        """([kind, b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
            const event = kind === "drop"
              ? new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true })
              : new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true });
            (kind === "drop" ? document.getElementById("drop") : document).dispatchEvent(event);
        }""",
        [kind, base64.b64encode(data).decode(), name],
    )


def wait_for_answer(page, verdict: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#verdict")).to_have_text(verdict, timeout=TIMEOUT_MS)
    expect(page.locator("#map .leaflet-marker-icon")).to_have_count(1)
    page.wait_for_function(
        "() => { const img = document.getElementById('reference');"
        " return img.complete && img.naturalWidth > 0; }"
    )
    # the bundled outline is drawn (tiles are blocked), under the marker
    page.wait_for_function(
        "() => document.querySelectorAll('#map .leaflet-outline-pane path').length > 100"
    )


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    if SCREENSHOTS:
        keep = Path(SCREENSHOTS)
        keep.mkdir(parents=True, exist_ok=True)
        # the copy kept in the repository as a 256-colour PNG: a third of the size, sharp text
        Image.open(shot).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(
            keep / name, optimize=True
        )
    return shot


def candidate_names(page) -> list[str]:
    return page.locator("#candidates li .name").all_inner_texts()


def korean_font_installed() -> bool:
    try:
        out = subprocess.run(
            ["fc-list", ":lang=ko", "family"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(out.stdout.strip())


def test_desktop_upload_shows_name_map_gps_and_candidates(server, browser, tmp_path):
    assert korean_font_installed(), "no Korean font: apt-get install -y fonts-noto-cjk"
    blocked: list[str] = []
    context, page = open_page(browser, server, 1280, 900, blocked)
    try:
        page.set_input_files(
            "#file",
            files=[
                {
                    "name": "taj-tagged-in-seoul.jpg",
                    "mimeType": "image/jpeg",
                    "buffer": with_wrong_gps(query("taj_mahal")),
                }
            ],
        )
        # an English reader: the catalog's own name and address, not its Korean columns
        wait_for_answer(page, "This is Taj Mahal")
        assert page.inner_text("#address") == TAJ_ADDRESS_EN
        assert page.inner_text("#confidence").endswith("%")
        assert "openstreetmap.org/?mlat=27.1751&mlon=78.0421" in page.get_attribute("#osm", "href")
        assert "query=27.1751,78.0421" in page.get_attribute("#gmaps", "href")
        # EXIF GPS: second point on the map and the distance to the landmark
        gps = page.inner_text("#gps")
        # where the tag points, named offline: Seoul, not Agra
        assert re.search(r"GPS tag \(Seoul, [^)]+\) is 4,[67]\d\d km from Taj Mahal", gps), gps
        assert page.get_attribute("#wikidata", "href") == "https://www.wikidata.org/wiki/Q9141"
        assert page.is_visible("#wikidata")
        assert page.locator(".leaflet-tooltip.photo-gps").inner_text() == "Photo GPS tag"
        assert page.locator(".leaflet-tooltip.place").inner_text() == "Taj Mahal"
        others = candidate_names(page)
        assert len(others) == 4 and "Charminar" in others and "Taj Mahal" not in others
        assert page.inner_text("#candidates-title") == "Other candidates"
        # Hangul is laid out with real glyphs: each syllable about as wide as it is tall
        box = page.evaluate("""() => { const s = document.createElement('span');
            s.style.font = '40px system-ui, "Noto Sans CJK KR", sans-serif';
            s.textContent = '타지마할';
            document.body.append(s); const r = s.getBoundingClientRect(); s.remove();
            return [r.width, r.height]; }""")
        assert 120 <= box[0] <= 200, box
        shot = save_screenshot(page, tmp_path, "web-desktop.png")
        assert Image.open(shot).size[0] == 1280
    finally:
        context.close()
    assert blocked, "expected the page to try OpenStreetMap tiles (and be refused)"
    assert all(urlparse(u).hostname == "tile.openstreetmap.org" for u in blocked), blocked


def two_landmarks_jpeg() -> bytes:
    """India Gate and the Golden Temple (gallery photos) side by side in an everyday photo."""
    import random

    from conftest import SHARED
    from landmark_finder.core.images import load_image
    from landmark_finder.explain.composites import paste_pair

    a = sorted((INDIAN / "gallery" / "india_gate").glob("*.jpg"))[0]
    b = sorted((INDIAN / "gallery" / "golden_temple").glob("*.jpg"))[0]
    bg = load_image(sorted((SHARED / "distractors").glob("*.jpg"))[20], 512).resize((800, 450))
    c = paste_pair(load_image(a, 512), load_image(b, 512), bg, random.Random(8))
    buf = io.BytesIO()
    c.image.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def test_every_landmark_is_outlined_and_marked(server, browser, tmp_path):
    from playwright.sync_api import expect

    context, page = open_page(browser, server, 1280, 900, [])
    try:
        page.set_input_files(
            "#file",
            files=[{"name": "two.jpg", "mimeType": "image/jpeg", "buffer": two_landmarks_jpeg()}],
        )
        expect(page.locator("#photo-marks polygon")).to_have_count(2, timeout=TIMEOUT_MS)
        expect(page.locator("#map .leaflet-marker-icon")).to_have_count(2)
        ids = page.eval_on_selector_all(
            "#photo-marks polygon", "els => els.map(e => e.dataset.landmark)"
        )
        assert sorted(ids) == ["golden_temple", "india_gate"]
        assert page.locator("#found li").count() == 2
        # the outlines lie over the photo: the drawing covers the image's box on the page, and
        # every corner is inside the photo (its pixels are the drawing's coordinates)
        assert page.locator("#photo-marks").bounding_box() == page.locator("#photo").bounding_box()
        w, h = (float(v) for v in page.get_attribute("#photo-marks", "viewBox").split()[2:])
        for i in range(2):
            b = page.locator("#photo-marks polygon").nth(i).bounding_box()
            assert b["width"] > 40 and b["height"] > 40
            points = page.locator("#photo-marks polygon").nth(i).get_attribute("points")
            xy = [tuple(map(float, p.split(","))) for p in points.split()]
            assert len(xy) == 4 and all(0 <= x <= w and 0 <= y <= h for x, y in xy), xy
        tips = page.locator(".leaflet-tooltip.place").all_inner_texts()
        assert len(tips) == 2 and any(t.startswith("Golden Temple") for t in tips), tips
        assert "India Gate" in tips
        save_screenshot(page, tmp_path, "web-two-landmarks.png")
    finally:
        context.close()


def test_korean_reader_and_the_language_switch(server, browser, tmp_path):
    """ko-KR: the original's sentence, Korean labels, name and address; the switch in the
    header turns the same answer English and back without reloading the page."""
    from playwright.sync_api import expect

    blocked: list[str] = []
    context, page = open_page(browser, server, 1280, 900, blocked, locale="ko-KR")
    try:
        expect(page.locator("#choose")).to_have_text("사진 선택")
        assert page.evaluate("document.documentElement.lang") == "ko"
        assert page.locator("#lang").input_value() == "ko"
        page.evaluate("window.notReloaded = true")
        page.set_input_files("#file", str(query("taj_mahal")))
        wait_for_answer(page, "이곳은 '타지마할' 입니다")
        assert page.inner_text("#address") == TAJ_ADDRESS_KO
        assert page.inner_text("#candidates-title") == "다른 후보"
        assert page.inner_text(".confidence .label") == "신뢰도"
        others = candidate_names(page)
        assert others and set(others) <= set(KOREAN_NAMES.values()) - {"타지마할"}, others
        expect(page.locator("#reference-caption")).to_contain_text("타지마할의 가장 잘 맞는")
        assert page.locator(".leaflet-tooltip.place").inner_text() == "타지마할"
        expect(page.locator("#catalog-count")).to_contain_text("좌표가 있습니다")
        save_screenshot(page, tmp_path, "web-korean.png")

        page.select_option("#lang", "en")
        expect(page.locator("#verdict")).to_have_text("This is Taj Mahal")
        assert page.inner_text("#address") == TAJ_ADDRESS_EN
        assert page.inner_text("#candidates-title") == "Other candidates"
        assert page.inner_text("#choose") == "Choose a photo"
        # the old marker's label fades out (Leaflet removes it 200 ms later): wait for one
        expect(page.locator(".leaflet-tooltip.place")).to_have_count(1)
        expect(page.locator(".leaflet-tooltip.place")).to_have_text("Taj Mahal")
        english = {"Charminar", "India Gate", "Golden Temple (Harmandir Sahib)", "Hawa Mahal"}
        assert set(candidate_names(page)) <= english
        assert page.evaluate("document.documentElement.lang") == "en"

        page.select_option("#lang", "ko")
        expect(page.locator("#verdict")).to_have_text("이곳은 '타지마할' 입니다")
        assert page.evaluate("window.notReloaded") is True  # switched in place, never reloaded
        # the album page speaks the chosen language too (remembered across pages)
        page.goto(server + "static/album.html")
        expect(page.locator("h1")).to_have_text("앨범 검사")
        expect(page.locator("#answers th").first).to_have_text("사진")
    finally:
        context.close()
    # the choice is remembered: a new page in the same browser context would start in Korean;
    # the server answers the API in the asked language too
    with urllib.request.urlopen(server + "api/landmarks?lang=ko", timeout=30) as r:
        by_id = {lm["id"]: lm for lm in json.loads(r.read())}
    assert by_id["taj_mahal"]["name"] == "타지마할"
    assert by_id["taj_mahal"]["address"] == TAJ_ADDRESS_KO
    assert by_id["taj_mahal"]["names"] == {"ko": "타지마할"}


def test_the_index_landmarks_on_the_map(server, browser):
    """Every catalog row with coordinates is a marker on the page's landmark map."""
    with urllib.request.urlopen(server + "api/landmarks", timeout=30) as r:
        landmarks = json.loads(r.read())
    placed = [lm for lm in landmarks if lm["latitude"] is not None]
    blocked: list[str] = []
    context, page = open_page(browser, server, 1280, 900, blocked)
    try:
        from playwright.sync_api import expect

        markers = page.locator("#catalog-map path.leaflet-interactive")
        expect(markers).to_have_count(len(placed))
        assert page.inner_text("#catalog-count") == (
            f"{len(placed)} of {len(landmarks)} landmarks have coordinates"
        )
        page.wait_for_function(
            "() => document.querySelectorAll("
            "'#catalog-map .leaflet-outline-pane path').length > 100"
        )
    finally:
        context.close()


def test_phone_drop_paste_and_a_bad_file(server, browser, tmp_path):
    from playwright.sync_api import expect

    blocked: list[str] = []
    context, page = open_page(browser, server, 390, 844, blocked)
    try:
        # a bad file: a clear one-line error, and the page keeps working
        page.set_input_files(
            "#file",
            files=[
                {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"this is not a photo"}
            ],
        )
        expect(page.locator("#status.error")).to_have_text(
            "notes.jpg: not an image (unrecognised format)"
        )
        assert page.locator("#result").is_hidden()
        # over the server's limit (5 MB here): refused before uploading, with the sizes
        page.set_input_files(
            "#file",
            files=[{"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": b"\xff" * 6_000_000}],
        )
        expect(page.locator("#status.error")).to_have_text(
            "huge.jpg: too large (6 MB; the limit is 5 MB)"
        )

        send_file_event(page, "paste", query("hawa_mahal", 1).read_bytes(), "pasted.jpg")
        wait_for_answer(page, "This is Hawa Mahal")

        send_file_event(page, "drop", query("charminar", 1).read_bytes(), "charminar.jpg")
        wait_for_answer(page, "This is Charminar")
        assert page.locator("#gps").is_hidden()  # no EXIF GPS in this photo
        assert len(candidate_names(page)) == 4
        # one column: nothing wider than the screen
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot = save_screenshot(page, tmp_path, "web-phone.png")
        assert Image.open(shot).size[0] == 390
    finally:
        context.close()
    assert all(urlparse(u).hostname == "tile.openstreetmap.org" for u in blocked), blocked


def test_docs_page_renders_offline(server, browser):
    from playwright.sync_api import expect

    blocked: list[str] = []
    context, page = open_page(browser, server + "docs", 1280, 900, blocked)
    try:
        expect(page.locator(".swagger-ui .title")).to_contain_text("landmark-finder")
        expect(page.locator(".opblock-summary-path").first).to_be_visible()
        assert "/api/recognize" in page.locator(".swagger-ui").inner_text()
    finally:
        context.close()
    assert blocked == []

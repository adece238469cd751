"""Tagging a photo library: a small real library built from ../shared/landmarks, tagged by the
real CLI, read back with exiftool (an independent reader), its HTML report opened in headless
Chromium, and a run killed with SIGKILL half-way that resumes.

Needs exiftool (Debian: libimage-exiftool-perl).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import INDIAN, SHARED

EXIFTOOL = shutil.which("exiftool")
pytestmark = pytest.mark.skipif(
    EXIFTOOL is None, reason="exiftool is not installed (apt-get install libimage-exiftool-perl)"
)
# Queries the small index (5 landmarks, Lite0) recognizes with high confidence.
PHOTOS = {
    "taj_mahal": "0f43f55db5b6.jpg",
    "charminar": "01498fe89459.jpg",
    "india_gate": "03cf229b89b8.jpg",
    "hawa_mahal": "0c819fb6569d.jpg",
    "golden_temple": "0823d0a7b46d.jpg",
}
TAJ = (27.1751, 78.0421)
INCHEON = (37.4563, 126.7052)  # the planted wrong tag: far from Charminar


def exiftool(*args: str) -> list[dict]:
    out = subprocess.run(
        [EXIFTOOL, "-j", "-struct", "-n", "-G1", *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def set_gps(path: Path, lat: float, lon: float) -> None:
    subprocess.run(
        [EXIFTOOL, "-q", "-overwrite_original", f"-GPSLatitude={lat}", "-GPSLatitudeRef=N",
         f"-GPSLongitude={lon}", "-GPSLongitudeRef=E",
         "-DateTimeOriginal=2019:11:02 10:30:00", str(path)],
        check=True,
    )  # fmt: skip


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def make_library(root: Path) -> Path:
    """Nested folders: correct GPS, a planted wrong GPS, none, a HEIC, a hidden file, a broken
    file, a text file, a non-landmark photo and a photo whose sidecar has other keywords."""
    q = INDIAN / "queries"
    (root / "2019" / "agra").mkdir(parents=True)
    (root / "2019" / "hyderabad").mkdir(parents=True)
    (root / "2020" / "misc" / "deep").mkdir(parents=True)
    taj = root / "2019" / "agra" / "taj.jpg"
    shutil.copyfile(q / "taj_mahal" / PHOTOS["taj_mahal"], taj)
    set_gps(taj, TAJ[0] + 0.002, TAJ[1] + 0.001)  # right tag
    char = root / "2019" / "hyderabad" / "charminar.jpg"
    shutil.copyfile(q / "charminar" / PHOTOS["charminar"], char)
    set_gps(char, *INCHEON)  # wrong tag
    shutil.copyfile(q / "india_gate" / PHOTOS["india_gate"], root / "2020" / "gate.jpg")
    with Image.open(q / "hawa_mahal" / PHOTOS["hawa_mahal"]) as im:
        im.convert("RGB").save(root / "2020" / "misc" / "hawa.heic", quality=90)
    golden = root / "2020" / "misc" / "deep" / "golden.jpg"
    shutil.copyfile(q / "golden_temple" / PHOTOS["golden_temple"], golden)
    subprocess.run(
        [EXIFTOOL, "-q", "-XMP-dc:Subject=Family", "-XMP-dc:Subject=Holiday",
         "-XMP-xmp:Rating=4", f"{golden}.xmp"],
        check=True,
    )  # fmt: skip
    distractor = sorted((SHARED / "distractors").glob("*.jpg"))[0]
    shutil.copyfile(distractor, root / "2020" / "street.jpg")
    (root / "2020" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "2020" / "IMG_0001.CR2").write_bytes(b"II*\x00 a RAW file without a preview")
    shutil.copyfile(taj, root / "2019" / ".hidden.jpg")
    (root / "notes.txt").write_text("trip notes")
    return root


def cli(*args: str):
    from landmark_finder.cli.main import app

    r = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def tagged(small_index, tmp_path_factory):
    """The library tagged once, with CSV, GeoJSON and HTML reports."""
    root = make_library(tmp_path_factory.mktemp("library") / "Photos")
    out = tmp_path_factory.mktemp("reports")
    r = cli("tag", small_index, root, "--workers", "2", "--report", out / "r.csv", "-q",
            "--html", out / "html")  # fmt: skip
    cli("tag", small_index, root, "--report", out / "r.geojson", "-q")
    return root, out, r.output


def test_tag_writes_sidecars_and_flags_the_planted_tag(tagged):
    root, out, output = tagged
    rows = {Path(r["path"]).name: r for r in csv.DictReader(open(out / "r.csv"))}
    assert set(rows) == {"taj.jpg", "charminar.jpg", "gate.jpg", "hawa.heic", "golden.jpg",
                         "street.jpg", "broken.jpg", "IMG_0001.CR2"}  # fmt: skip
    expected = {"taj.jpg": "taj_mahal", "charminar.jpg": "charminar", "gate.jpg": "india_gate",
                "hawa.heic": "hawa_mahal", "golden.jpg": "golden_temple"}  # fmt: skip
    for name, lid in expected.items():
        assert rows[name]["status"] == "recognized" and rows[name]["landmark_id"] == lid, name
    assert rows["street.jpg"]["status"] == "unknown"
    assert rows["broken.jpg"]["status"] == "error"
    assert rows["IMG_0001.CR2"]["status"] == "error"
    assert "RAW file without a readable preview" in rows["IMG_0001.CR2"]["error"]
    assert [n for n, r in rows.items() if r["gps_mismatch"] == "True"] == ["charminar.jpg"]
    assert float(rows["taj.jpg"]["distance_km"]) < 1
    assert float(rows["charminar.jpg"]["distance_km"]) > 3000
    assert rows["taj.jpg"]["taken"] == "2019-11-02T10:30:00"
    assert "skipped 1 hidden, 1 not an image" in " ".join(output.split())
    # sidecars for recognized photos only
    xmps = sorted(p.name for p in root.rglob("*.xmp"))
    assert xmps == sorted(f"{n}.xmp" for n in expected)
    # exiftool reads the keyword, hierarchy, location and our id back
    meta = exiftool(str(root / "2019" / "hyderabad" / "charminar.jpg.xmp"))[0]
    assert meta["XMP-dc:Subject"] == ["Charminar"]
    assert meta["XMP-lr:HierarchicalSubject"] == ["Landmarks|India|Charminar"]
    [loc] = meta["XMP-iptcExt:LocationShown"]
    assert loc["LocationName"] == "Charminar" and loc["CountryName"] == "India"
    assert abs(loc["GPSLatitude"] - 17.3616) < 1e-4 and abs(loc["GPSLongitude"] - 78.4747) < 1e-4
    assert meta["XMP-landmarkfinder:LandmarkID"] == "charminar"
    assert meta["XMP-landmarkfinder:Confidence"] > 0.5
    # the existing sidecar was merged: its keywords and rating survive
    golden = exiftool(str(root / "2020" / "misc" / "deep" / "golden.jpg.xmp"))[0]
    assert golden["XMP-dc:Subject"] == ["Family", "Holiday", "Golden Temple (Harmandir Sahib)"]
    assert golden["XMP-xmp:Rating"] == 4
    # GeoJSON: one feature per photo; the mis-tagged one sits at its (wrong) tag
    fc = json.loads((out / "r.geojson").read_text())
    feats = {Path(f["properties"]["path"]).name: f for f in fc["features"]}
    assert feats["charminar.jpg"]["geometry"]["coordinates"] == pytest.approx(INCHEON[::-1])


def test_second_run_handles_nothing(tagged, small_index):
    root, _, _ = tagged
    r = cli("tag", small_index, root, "-q")
    assert "0 handled" in r.output and "8 unchanged" in r.output
    (root / "2020" / "gate.jpg").touch()  # touched, same bytes: still nothing to do
    r = cli("tag", small_index, root, "-q")
    assert "0 handled" in r.output


def test_write_into_file_keeps_pixels_and_clear_restores(small_index, tmp_path):
    root = make_library(tmp_path / "lib")
    char = root / "2019" / "hyderabad" / "charminar.jpg"
    heic = root / "2020" / "misc" / "hawa.heic"
    before = {p: pixels(p) for p in (char, heic)}
    orig_bytes = char.read_bytes()
    cli("tag", small_index, root, "--write-into-file", "--set-gps", "mismatch", "-q",
        "--workers", "1")  # fmt: skip
    assert not list(root.rglob("*.jpg.xmp")) or list(root.rglob("*.xmp")) == [
        root / "2020" / "misc" / "deep" / "golden.jpg.xmp"  # the user's own sidecar only
    ]
    for p in (char, heic):
        assert np.array_equal(pixels(p), before[p]), p
    m = exiftool(str(char))[0]
    assert m["XMP-dc:Subject"] == ["Charminar"]
    assert m["XMP-iptcExt:LocationShown"][0]["LocationName"] == "Charminar"
    assert abs(m["Composite:GPSLatitude"] - 17.3616) < 1e-4  # the wrong tag was corrected
    assert m["ExifIFD:DateTimeOriginal"] == "2019:11:02 10:30:00"  # other metadata survives
    assert exiftool(str(heic))[0]["XMP-dc:Subject"] == ["Hawa Mahal"]
    taj = exiftool(str(root / "2019" / "agra" / "taj.jpg"))[0]
    assert abs(taj["Composite:GPSLatitude"] - (TAJ[0] + 0.002)) < 1e-5  # right tag kept
    cli("tag", "clear", root)
    m = exiftool(str(char))[0]
    assert "XMP-dc:Subject" not in m and not any(k.startswith("XMP-landmarkfinder") for k in m)
    assert abs(m["Composite:GPSLatitude"] - INCHEON[0]) < 1e-5  # the replaced tag is back
    assert np.array_equal(pixels(char), before[char])
    assert len(char.read_bytes()) == pytest.approx(len(orig_bytes), abs=64)


def test_kill_9_resumes_without_redoing(small_index, tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    for lid in PHOTOS:
        for p in sorted((INDIAN / "queries" / lid).glob("*.jpg"))[:6]:
            shutil.copyfile(p, root / f"{lid}-{p.name}")
    n = len(list(root.iterdir()))
    db = root / ".landmark-finder-tags.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    cmd = [sys.executable, "-m", "landmark_finder.cli.main", "tag", str(small_index), str(root),
           "--workers", "1", "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done = 0
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                    done = c.execute("SELECT count(*) FROM photos").fetchone()[0]
            except sqlite3.Error:
                done = 0
            if done >= n // 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        first = dict(c.execute("SELECT path, tagged_at FROM photos").fetchall())
    assert n // 2 <= len(first) < n
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    handled = int(r.stdout.split(" handled")[0].split()[-1])
    assert handled == n - len(first)
    with sqlite3.connect(db) as c:
        after = dict(c.execute("SELECT path, tagged_at FROM photos").fetchall())
    assert len(after) == n and all(after[p] == t for p, t in first.items())
    for x in root.glob("*.xmp"):  # every sidecar is whole: exiftool reads it
        assert "XMP-landmarkfinder:LandmarkID" in exiftool(str(x))[0], x
    assert not list(root.glob("*_exiftool_tmp"))


def test_html_report_in_chromium(tagged):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian chromium is not installed")
    from playwright import sync_api

    _, out, _ = tagged
    page_file = out / "html" / "index.html"
    blocked: list[str] = []
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            ctx = b.new_context()

            def only_files(route):
                if route.request.url.startswith(("file:", "data:")):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            ctx.route("**/*", only_files)
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())
            page.wait_for_selector(".album-marker")
            counts = page.eval_on_selector_all(
                ".album-marker", "els => els.map(e => e.textContent)"
            )
            assert sorted(counts) == ["1"] * 5
            assert page.locator("path.mismatch-line").count() == 1
            assert page.locator("#mismatches tr.mismatch").count() == 1
            assert "charminar.jpg" in page.locator("#mismatches").inner_text()
            assert page.locator("path.leaflet-interactive").count() >= 1
            outline = page.eval_on_selector_all("svg path", "els => els.length")
            assert outline > 100  # the world outline's countries
            imgs = page.eval_on_selector_all(
                "#groups img", "els => els.filter(i => i.complete && i.naturalWidth > 0).length"
            )
            assert imgs == 6  # every readable photo has its thumbnail
            assert not errors and not blocked
        finally:
            b.close()


def test_html_report_in_korean(tagged, small_index, tmp_path):
    """`tag --lang ko --html`: the report's headings, summary and table headers in Korean
    (a re-run: nothing is recognized again), the CSV/GeoJSON column names unchanged."""
    from landmark_finder import i18n

    root, _, _ = tagged
    try:
        r = cli("tag", small_index, root, "-q", "--lang", "ko", "--html", tmp_path / "ko")
    finally:
        i18n.set_language("en")
    assert "0장 처리" in r.output and "HTML 보고서: " in r.output
    page = (tmp_path / "ko" / "index.html").read_text("utf-8")
    assert '<html lang="ko">' in page and "<h1>이 사진 보관함의 랜드마크</h1>" in page
    assert '<h2 id="mismatch-title">GPS 태그가 사진 속 랜드마크에서 멀리 떨어진 사진</h2>' in page
    assert "사진 8장: 랜드마크 5곳 중 하나가 찍힌 사진 5장" in page
    assert '"Not a landmark I know": "알고 있는 랜드마크가 아닙니다"' in page


def test_web_album(small_index):
    from fastapi.testclient import TestClient

    from landmark_finder.web import create_app

    client = TestClient(create_app(small_index))
    q = INDIAN / "queries"
    files = [
        ("photos", ("taj.jpg", (q / "taj_mahal" / PHOTOS["taj_mahal"]).read_bytes(), "image/jpeg")),
        ("photos", ("bad.jpg", b"not an image", "image/jpeg")),
    ]
    r = client.post("/api/album/photos", files=files)
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert [x["status"] for x in rows] == ["recognized", "error"]
    assert rows[0]["landmark_id"] == "taj_mahal" and rows[0]["gps_mismatch"] is False
    assert client.get("/static/album.html").status_code == 200
    too_many = [("photos", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(21)]
    assert client.post("/api/album/photos", files=too_many).status_code == 422

"""Web API (landmark_finder.web) through FastAPI's TestClient, on the small real index."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from conftest import INDIAN, SMALL_LANDMARKS  # noqa: E402
from landmark_finder.core.geo import GeoPoint, distance_km  # noqa: E402
from landmark_finder.recognition.recognizer import Recognizer  # noqa: E402
from landmark_finder.web import create_app  # noqa: E402

TOKEN = "correct horse battery staple"
EXTRA_KEYS = {"reference_image_url", "exif_gps", "exif_place", "distance_km", "heatmap_url"}


def query(landmark: str, i: int = 0):
    return sorted((INDIAN / "queries" / landmark).glob("*.jpg"))[i]


def with_gps(path, lat_dms, lon_dms, refs=("N", "E")) -> bytes:
    """The photo re-encoded with an EXIF GPS tag (as a phone would write it)."""
    exif = Image.Exif()
    exif[0x8825] = {1: refs[0], 2: lat_dms, 3: refs[1], 4: lon_dms}
    buf = io.BytesIO()
    Image.open(path).save(buf, "JPEG", exif=exif, quality=92)
    return buf.getvalue()


def post_photo(client, data: bytes, name: str = "photo.jpg", **params):
    return client.post("/api/recognize", params=params, files={"photo": (name, data, "image/jpeg")})


@pytest.fixture(scope="module")
def recognizer(small_index) -> Recognizer:
    return Recognizer.open(small_index)


@pytest.fixture(scope="module")
def client(recognizer):
    """Read-only app: no admin token configured."""
    with TestClient(create_app(recognizer, max_upload_bytes=300_000)) as c:
        yield c


@pytest.fixture(scope="module")
def admin(small_index, tmp_path_factory):
    """App with admin endpoints on a private copy of the index (the shared one stays intact)."""
    root = tmp_path_factory.mktemp("admin")
    shutil.copytree(small_index, root / "index")
    app = create_app(root / "index", admin_token=TOKEN)
    with TestClient(app) as c:
        c.uploads = root / "uploads"
        yield c


AUTH = {"Authorization": f"Bearer {TOKEN}"}


# -- read-only endpoints ------------------------------------------------------------------------


def test_health(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["backbone"] == "efficientnet-lite0"
    assert (h["landmarks"], h["photos"], h["admin_enabled"]) == (5, 40, False)
    assert h["catalog_rows"] == 24 and h["max_upload_bytes"] == 300_000


def test_landmarks_catalog_with_photo_counts(client):
    rows = client.get("/api/landmarks").json()
    by_id = {r["id"]: r for r in rows}
    assert len(rows) == 24  # the whole catalog, not only landmarks with photos
    assert {i for i, r in by_id.items() if r["photo_count"]} == set(SMALL_LANDMARKS)
    assert all(by_id[i]["photo_count"] == 8 for i in SMALL_LANDMARKS)
    assert by_id["lotus_temple"]["photo_count"] == 0  # catalog row without photos
    assert by_id["taj_mahal"]["latitude"] == pytest.approx(27.1751)


def test_landmark_detail_and_unknown_id(client):
    d = client.get("/api/landmarks/charminar").json()
    assert d["name"] == "Charminar" and d["photo_count"] == 8 and len(d["photo_urls"]) == 8
    photo = client.get(d["photo_urls"][0])
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(photo.content)).size) <= 1024
    assert client.get("/api/landmarks/lotus_temple").json()["photo_urls"] == []
    r = client.get("/api/landmarks/no_such_place")
    assert r.status_code == 404 and "no_such_place" in r.json()["detail"]


def test_reference_photos_only_by_landmark_and_row(client):
    url = client.get("/api/landmarks/charminar").json()["photo_urls"][0]
    row = int(url.rsplit("/", 1)[1])
    assert (
        client.get(f"/api/landmarks/taj_mahal/photos/{row}").status_code == 404
    )  # other landmark's row
    assert client.get("/api/landmarks/charminar/photos/99999").status_code == 404
    assert client.get("/api/landmarks/charminar/photos/-1").status_code == 404
    assert client.get("/api/landmarks/charminar/photos/..%2F..%2Fetc%2Fpasswd").status_code in (
        404,
        422,
    )
    assert client.get("/api/landmarks/charminar/photos/%2Fetc%2Fpasswd").status_code in (404, 422)


def test_recognize_is_the_cli_json_plus_evidence(client, small_index):
    from typer.testing import CliRunner

    from landmark_finder.cli.main import app as cli_app

    photo = query("taj_mahal")
    r = post_photo(client, photo.read_bytes(), photo.name)
    assert r.status_code == 200
    body = r.json()
    cli = CliRunner().invoke(cli_app, ["recognize", str(small_index), str(photo), "--json"])
    assert cli.exit_code == 0, cli.output
    expected = json.loads(cli.output.strip().splitlines()[-1])
    assert set(body) == set(expected) | EXTRA_KEYS
    # the web gives the evidence photo as a URL, never as a path on the server's disk
    assert body["evidence"]["reference_image"] == body["reference_image_url"]
    assert Path(expected["evidence"]["reference_image"]).parent.name == "taj_mahal"
    body["evidence"]["reference_image"] = expected["evidence"]["reference_image"]
    assert {k: v for k, v in body.items() if k not in EXTRA_KEYS | {"image"}} == {
        k: v for k, v in expected.items() if k != "image"
    }
    assert body["image"] == photo.name
    assert body["status"] == "recognized" and body["landmark"]["id"] == "taj_mahal"
    # the evidence photo is one of the top candidate's registered reference photos
    assert (
        body["reference_image_url"] in client.get("/api/landmarks/taj_mahal").json()["photo_urls"]
    )
    assert client.get(body["reference_image_url"]).status_code == 200
    assert body["exif_gps"] is None and body["distance_km"] is None
    assert body["heatmap_url"] is None or body["heatmap_url"].startswith("http")


def test_recognize_top_k(client):
    body = post_photo(client, query("charminar").read_bytes(), top_k=2).json()
    assert len(body["candidates"]) == 2
    assert post_photo(client, query("charminar").read_bytes(), top_k=0).status_code == 422


def test_exif_gps_and_distance_to_the_landmark(client):
    # A Taj Mahal photo whose GPS tag says Seoul: the case this project exists for.
    data = with_gps(query("taj_mahal", 1), (37.0, 33.0, 5.0), (126.0, 58.0, 40.0))
    body = post_photo(client, data, "tagged.jpg").json()
    assert body["landmark"]["id"] == "taj_mahal"
    gps = body["exif_gps"]
    assert gps == pytest.approx({"latitude": 37.551389, "longitude": 126.977778}, abs=1e-5)
    expected = distance_km(GeoPoint(gps["latitude"], gps["longitude"]), GeoPoint(27.1751, 78.0421))
    assert body["distance_km"] == pytest.approx(expected, abs=0.01)
    assert 4600 < body["distance_km"] < 4800
    # where the tag points, offline (GeoNames): Seoul, not the Taj Mahal's Agra
    assert body["exif_place"]["city"] == "Seoul" and body["exif_place"]["country_code"] == "KR"


# -- bad uploads --------------------------------------------------------------------------------


def assert_still_serving(client):
    assert client.get("/health").status_code == 200
    assert (
        post_photo(client, query("hawa_mahal", 1).read_bytes()).json()["landmark"]["id"]
        == "hawa_mahal"
    )


def test_empty_upload(client):
    r = post_photo(client, b"", "empty.jpg")
    assert r.status_code == 400 and r.json()["detail"] == "empty.jpg: empty file"
    assert_still_serving(client)


def test_not_an_image(client):
    r = post_photo(client, b"%PDF-1.4 certainly not a photo\n" * 20, "notes.jpg")
    assert r.status_code == 422
    assert r.json()["detail"] == "notes.jpg: not an image (unrecognised format)"
    assert_still_serving(client)


def test_truncated_jpeg(client):
    data = query("india_gate").read_bytes()
    r = post_photo(client, data[: len(data) // 2], "cut.jpg")
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("cut.jpg: truncated or corrupt image data") and "\n" not in detail
    assert_still_serving(client)


def test_too_large_declared_and_streamed(client):
    big = b"\xff\xd8" + b"\0" * 400_000  # over the 300 kB limit of this app
    r = post_photo(client, big, "huge.jpg")  # Content-Length declared: refused before reading
    assert r.status_code == 413 and "upload too large" in r.json()["detail"]

    def chunks():  # no Content-Length: cut off while streaming
        for _ in range(100):
            yield b"x" * 8192

    r = client.post(
        "/api/recognize",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 413 and "upload too large" in r.json()["detail"]
    assert_still_serving(client)


def test_photo_over_the_limit_inside_an_acceptable_body(recognizer):
    # body limit has multipart headroom; the photo itself is still checked
    with TestClient(create_app(recognizer, max_upload_bytes=10_000)) as c:
        r = post_photo(c, b"\xff" * 20_000, "a.jpg")
        assert (
            r.status_code == 413
            and r.json()["detail"] == "a.jpg: upload too large: the limit is 10 kB"
        )
        r = post_photo(c, b"\xff" * 10_001, "b.jpg")
        assert r.status_code == 413 and r.json()["detail"].startswith("b.jpg: upload too large")


def test_missing_photo_field(client):
    r = client.post("/api/recognize", data={"x": "1"})
    assert r.status_code == 422 and r.json()["detail"] == "photo: Field required"


# -- docs and browser app assets ----------------------------------------------------------------


def test_docs_work_offline(client):
    html = client.get("/docs").text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "cdn." not in html and "https://" not in html.replace("https://fastapi", "")
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/static/vendor/swagger-ui/{asset}").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/recognize",
        "/api/landmarks",
        "/api/landmarks/{landmark_id}",
        "/health",
        "/api/landmarks/{landmark_id}/photos",
    } <= set(paths)
    assert {"post", "delete"} <= set(paths["/api/landmarks/{landmark_id}/photos"])


def test_page_and_vendored_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and "static/vendor/leaflet/leaflet.js" in page.text
    assert "https://" not in page.text  # nothing from the internet: every asset is vendored
    for path in (
        "static/app.js",
        "static/app.css",
        "static/vendor/leaflet/leaflet.css",
        "static/vendor/leaflet/images/marker-icon.png",
        "static/vendor/topojson-client/topojson-client.min.js",
    ):
        assert client.get(f"/{path}").status_code == 200, path
    world = client.get("/static/vendor/world-atlas/countries-110m.json").json()
    assert world["type"] == "Topology" and len(world["objects"]["countries"]["geometries"]) > 150


# -- admin endpoints ----------------------------------------------------------------------------


def test_admin_disabled_without_a_configured_token(client):
    for headers in ({}, AUTH):
        r = client.delete("/api/landmarks/taj_mahal/photos", headers=headers)
        assert r.status_code == 403 and r.json()["detail"] == "admin endpoints disabled"
        r = client.post(
            "/api/landmarks/x/photos",
            headers=headers,
            files={"photos": ("a.jpg", query("taj_mahal").read_bytes())},
        )
        assert r.status_code == 403
    assert client.get("/api/landmarks/taj_mahal").json()["photo_count"] == 8


@pytest.mark.parametrize(
    "headers",
    [
        {},  # missing
        {"Authorization": "Bearer wrong"},  # wrong
        {"Authorization": f"Basic {TOKEN}"},  # wrong scheme
        {"Authorization": f"Bearer {TOKEN}x"},  # prefix of the right one
        {"Authorization": "Bearer 토큰".encode()},  # non-ASCII must not crash the comparison
    ],
)
def test_admin_missing_or_wrong_token(admin, headers):
    r = admin.delete("/api/landmarks/taj_mahal/photos", headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = admin.post(
        "/api/landmarks/new_place/photos",
        headers=headers,
        files={"photos": ("a.jpg", query("taj_mahal").read_bytes())},
    )
    assert r.status_code == 401
    assert admin.get("/api/landmarks/new_place").status_code == 404


def test_admin_right_token_reaches_the_endpoint(admin):
    r = admin.delete("/api/landmarks/no_such_place/photos", headers=AUTH)
    assert r.status_code == 404  # authorized; the landmark does not exist


def test_admin_rejects_bad_photos_and_ids(admin):
    n_photos = admin.get("/health").json()["photos"]
    good = query("taj_mahal").read_bytes()
    r = admin.post(
        "/api/landmarks/new_place/photos",
        headers=AUTH,
        files=[("photos", ("a.jpg", good)), ("photos", ("b.jpg", b"junk"))],
    )
    assert r.status_code == 422 and r.json()["detail"].startswith("b.jpg: not an image")
    r = admin.post("/api/landmarks/.hidden/photos", headers=AUTH, files={"photos": ("a.jpg", good)})
    assert r.status_code == 422
    r = admin.post(
        "/api/landmarks/new_place/photos",
        headers=AUTH,
        data={"latitude": "12.5"},
        files={"photos": ("a.jpg", good)},
    )
    assert r.status_code == 422 and "both" in r.json()["detail"]
    r = admin.post(
        "/api/landmarks/new_place/photos",
        headers=AUTH,
        data={"latitude": "123"},
        files={"photos": ("a.jpg", good)},
    )
    assert r.status_code == 422
    assert admin.get("/api/landmarks/new_place").status_code == 404  # nothing was added
    assert admin.get("/health").json()["photos"] == n_photos


def test_admin_add_and_remove_a_hangul_named_landmark(admin):
    lid, name = "연꽃사원", "연꽃 사원 (로터스 템플)"
    photos = sorted((INDIAN / "unseen" / "lotus_temple").glob("*.jpg"))
    files = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in photos[:8]]
    files.append(("photos", ("copy.jpg", photos[0].read_bytes(), "image/jpeg")))  # a duplicate
    r = admin.post(
        f"/api/landmarks/{lid}/photos",
        headers=AUTH,
        files=files,
        data={
            "name": name,
            "address": "뉴델리, 인도",
            "latitude": "28.5535",
            "longitude": "77.2588",
        },
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["added"] == 8 and len(out["skipped"]) == 1 and "duplicate" in out["skipped"][0]
    assert out["landmark"]["name"] == name and out["landmark"]["photo_count"] == 8
    assert (out["index_photos"], out["index_landmarks"]) == (48, 6)
    assert "연꽃 사원".encode() in r.content  # UTF-8 on the wire
    assert len(list((admin.uploads / lid).glob("*.jpg"))) == 8  # kept in the uploads gallery

    detail = admin.get(f"/api/landmarks/{lid}").json()
    assert (detail["name"], detail["address"], detail["latitude"]) == (
        name,
        "뉴델리, 인도",
        28.5535,
    )
    assert admin.get(detail["photo_urls"][0]).status_code == 200
    assert name in {row["name"] for row in admin.get("/api/landmarks").json()}

    # the new landmark is recognized right away (the recognizer was swapped in)
    body = post_photo(admin, photos[10].read_bytes(), "연꽃.jpg").json()
    assert body["image"] == "연꽃.jpg"
    assert body["candidates"][0]["name"] == name
    assert body["reference_image_url"] in detail["photo_urls"]

    # removing its photos keeps the catalog row (listed, never predicted)
    r = admin.delete(f"/api/landmarks/{lid}/photos", headers=AUTH)
    assert (
        r.status_code == 200
        and r.json()["removed"] == 8
        and r.json()["landmark"]["photo_count"] == 0
    )
    assert admin.get(f"/api/landmarks/{lid}").json()["name"] == name
    body = post_photo(admin, photos[10].read_bytes()).json()
    assert name not in {c["name"] for c in body["candidates"]}
    assert admin.delete(f"/api/landmarks/{lid}/photos", headers=AUTH).status_code == 404


@pytest.mark.slow
def test_admin_remove_single_photos_by_row(admin):
    before = admin.get("/api/landmarks/hawa_mahal").json()
    rows = [int(u.rsplit("/", 1)[1]) for u in before["photo_urls"][:2]]
    r = admin.delete("/api/landmarks/hawa_mahal/photos", params={"row": rows}, headers=AUTH)
    assert r.status_code == 200 and r.json()["removed"] == 2
    after = admin.get("/api/landmarks/hawa_mahal").json()
    assert after["photo_count"] == 6 and len(after["photo_urls"]) == 6


def test_admin_remove_rows_of_another_landmark_is_refused(admin):
    url = admin.get("/api/landmarks/charminar").json()["photo_urls"][0]
    row = int(url.rsplit("/", 1)[1])
    r = admin.delete("/api/landmarks/taj_mahal/photos", params={"row": row}, headers=AUTH)
    assert r.status_code == 404
    assert admin.get("/api/landmarks/charminar").json()["photo_count"] == 8


# -- heatmaps (only when landmark_finder.explain exists) ----------------------------------------


def test_heatmap_overlay_for_the_last_upload(small_index):
    pytest.importorskip("landmark_finder.explain")
    with TestClient(create_app(small_index)) as c:
        assert c.get("/health").json()["heatmaps"] is True
        body = post_photo(c, query("golden_temple").read_bytes()).json()
        assert body["heatmap_url"]
        r = c.get(body["heatmap_url"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(r.content)).size[0] > 0
        assert c.get("/api/heatmaps/not-a-key.png").status_code == 404


# -- the serve command --------------------------------------------------------------------------


def test_serve_command_reports_a_bad_index(tmp_path):
    from typer.testing import CliRunner

    from landmark_finder.cli.main import app as cli_app

    r = CliRunner().invoke(cli_app, ["serve", str(tmp_path / "nothing-here")])
    assert r.exit_code == 2 and "not a landmark-finder index" in r.output

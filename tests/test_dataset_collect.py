"""`dataset collect` against a local HTTP server started here (no other network is touched)."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from PIL import Image
from typer.testing import CliRunner

from conftest import need_shared
from landmark_finder.cli.main import app
from landmark_finder.dataset.collect import CollectListError, collect, read_list
from landmark_finder.dataset.commons import category_photos
from landmark_finder.dataset.http import FetchError, HttpSettings, PoliteClient

runner = CliRunner()
MAX_BYTES = 300_000


def _png(colour=(30, 140, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (160, 120), colour).save(buf, "PNG")
    return buf.getvalue()


class Site:
    """A tiny web site + Commons API look-alike; counts requests per path."""

    def __init__(self) -> None:
        photos = sorted((need_shared() / "gallery" / "taj_mahal").glob("*.jpg"))
        self.jpeg = photos[0].read_bytes()
        self.commons = [p.read_bytes() for p in photos[1:4]]
        self.png, self.png2 = _png(), _png((200, 90, 10))
        self.hits: dict[str, int] = {}
        self.api_calls: list[dict] = []

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        u = urlsplit(h.path)
        self.hits[u.path] = self.hits.get(u.path, 0) + 1
        n = self.hits[u.path]
        if u.path in ("/photos/a.jpg", "/photos/a-again.jpg"):
            return self.send(h, 200, self.jpeg, "image/jpeg")
        if u.path == "/photos/b.png":
            return self.send(h, 200, self.png, "image/png; charset=binary")
        if u.path == "/page.html":
            return self.send(h, 200, b"<html>a photo page</html>", "text/html; charset=utf-8")
        if u.path == "/fake.jpg":
            return self.send(h, 200, b"<html>login required</html>" * 10, "image/jpeg")
        if u.path == "/big.jpg":
            return self.send(h, 200, self.jpeg + b"\0" * MAX_BYTES, "image/jpeg")
        if u.path == "/big-stream.jpg":  # no Content-Length: cut off while streaming
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Connection", "close")
            h.end_headers()
            for _ in range(MAX_BYTES // 4096 + 10):
                h.wfile.write(b"\xff" * 4096)
            return None
        if u.path == "/flaky.jpg":
            if n == 1:
                h.send_response(503)
                h.send_header("Retry-After", "0")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return None
            return self.send(h, 200, self.png2, "image/png")
        if u.path == "/always-503.jpg":
            return self.send(h, 503, b"busy", "text/plain")
        if u.path.startswith("/commons/file"):
            k = int(u.path.rsplit("file", 1)[1].split(".")[0])
            return self.send(h, 200, self.commons[k], "image/jpeg")
        if u.path == "/w/api.php":
            return self.api(h, {k: v[0] for k, v in parse_qs(u.query).items()})
        return self.send(h, 404, b"not found", "text/plain")

    def api(self, h: BaseHTTPRequestHandler, q: dict) -> None:
        self.api_calls.append(q)
        base = f"http://127.0.0.1:{h.server.server_address[1]}"
        if q.get("gcmtitle") == "Category:Busy" and len(self.api_calls) == 1:
            return self.send(
                h,
                200,
                json.dumps({"error": {"code": "maxlag", "info": "Waiting for a replica"}}).encode(),
                "application/json",
            )
        if q.get("gcmtitle") == "Category:Nowhere":
            return self.send(
                h,
                200,
                json.dumps({"error": {"code": "invalidcategory", "info": "bad title"}}).encode(),
                "application/json",
            )

        def page(k: int, mime: str = "image/jpeg") -> dict:
            return {
                "title": f"File:Taj {k}.jpg",
                "imageinfo": [
                    {
                        "url": f"{base}/commons/file{k}.jpg",
                        "thumburl": f"{base}/commons/file{k}.jpg",
                        "descriptionurl": f"{base}/wiki/File:Taj_{k}.jpg",
                        "mime": mime,
                        "extmetadata": {
                            "LicenseShortName": {"value": "CC BY-SA 4.0"},
                            "LicenseUrl": {
                                "value": "https://creativecommons.org/licenses/by-sa/4.0"
                            },
                            "Artist": {
                                "value": f'<a href="//commons.wikimedia.org/wiki/User:P{k}">'
                                f"Photographer &amp; {k}</a>"
                            },
                        },
                    }
                ],
            }

        if "gcmcontinue" not in q:
            doc = {
                "continue": {"gcmcontinue": "page2", "continue": "gcmcontinue||"},
                "query": {
                    "pages": [
                        page(0),
                        {
                            "title": "File:Plan.pdf",
                            "imageinfo": [{"url": f"{base}/x.pdf", "mime": "application/pdf"}],
                        },
                    ]
                },
            }
        else:
            doc = {"query": {"pages": [page(1), page(2)]}}
        return self.send(h, 200, json.dumps(doc).encode(), "application/json")

    @staticmethod
    def send(h: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


@pytest.fixture(scope="module")
def site():
    s = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            try:
                s.handle(self)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    s.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield s
    server.shutdown()
    server.server_close()


class _LoopbackOnly(requests.adapters.HTTPAdapter):
    """Refuses any host but 127.0.0.1, so a test mistake can never reach the internet."""

    def send(self, request, **kwargs):
        if urlsplit(request.url).hostname != "127.0.0.1":
            raise requests.ConnectionError(f"tests must not leave the machine: {request.url}")
        return super().send(request, **kwargs)


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # never route the loopback through a proxy
    session.mount("http://", _LoopbackOnly())
    session.mount("https://", _LoopbackOnly())
    return session


def _client() -> PoliteClient:
    session = _session()
    return PoliteClient(
        HttpSettings(min_interval=0, retries=2, backoff=0.01, timeout=10, max_bytes=MAX_BYTES),
        session,
    )


def test_collect_checks_every_download(site, tmp_path):
    site.hits.clear()
    lst = tmp_path / "list.csv"
    b = site.base
    lst.write_text(
        "\n".join(
            [
                "landmark_id,url,commons_category,licence,author",
                f"taj_mahal,{b}/photos/a.jpg,,CC0,Someone",
                f"taj_mahal,{b}/photos/a-again.jpg,,,",  # same bytes: de-duplicated
                f"taj_mahal,{b}/photos/b.png,,,",
                f"taj_mahal,{b}/missing.jpg,,,",
                f"taj_mahal,{b}/page.html,,,",
                f"taj_mahal,{b}/fake.jpg,,,",
                f"taj_mahal,{b}/big.jpg,,,",
                f"taj_mahal,{b}/big-stream.jpg,,,",
                f"red_fort,{b}/flaky.jpg,,,",
                f"red_fort,{b}/always-503.jpg,,,",
                "../evil,http://127.0.0.1/x.jpg,,,",
                "red_fort,,,,",
                "taj_mahal,,Taj Mahal,,",
            ]
        )
        + "\n"
    )
    out = tmp_path / "gallery"
    client = _client()
    rep = collect(lst, out, client=client, per_category=10, commons_api=f"{b}/w/api.php")
    failed = "\n".join(rep.failed)
    assert "missing.jpg: HTTP 404" in failed
    assert "page.html: not an image (Content-Type text/html)" in failed
    assert "fake.jpg: not a usable image (not an image" in failed
    assert "big.jpg: too large" in failed and "big-stream.jpg: too large" in failed
    assert (
        "always-503.jpg: HTTP 503" in failed and site.hits["/always-503.jpg"] == 3
    )  # 1 + 2 retries
    assert (
        "bad landmark_id '../evil'" in failed
        and "line 13: no url and no commons_category" in failed
    )
    assert len(rep.failed) == 8, failed
    assert site.hits["/flaky.jpg"] == 2  # retried after the 503, then saved
    assert rep.duplicates == 1
    assert rep.per_landmark == {"taj_mahal": 2 + 3, "red_fort": 1}
    saved = {p.relative_to(out).as_posix() for p in rep.saved}
    assert any(s.startswith("taj_mahal/") and s.endswith(".png") for s in saved)
    for p in rep.saved:
        meta = json.loads(p.with_name(p.name + ".json").read_text())
        assert meta["sha256"].startswith(p.stem) and meta["landmark_id"] == p.parent.name
        assert meta["width"] > 0 and meta["source_url"].startswith(site.base)
    metas = [json.loads(p.with_name(p.name + ".json").read_text()) for p in rep.saved]
    a = next(m for m in metas if m["source_url"].endswith("/photos/a.jpg"))
    assert (a["licence"], a["author"]) == ("CC0", "Someone")
    commons = [m for m in metas if "/commons/" in m["source_url"]]
    assert len(commons) == 3
    assert {m["licence"] for m in commons} == {"CC BY-SA 4.0"}
    assert {m["author"] for m in commons} == {
        "Photographer & 0",
        "Photographer & 1",
        "Photographer & 2",
    }
    assert all(m["page_url"].endswith(".jpg") for m in commons)
    # Resuming: saved URLs are not fetched again (failed ones are retried).
    before = dict(site.hits)
    rep2 = collect(lst, out, client=client, per_category=10, commons_api=f"{b}/w/api.php")
    assert rep2.saved == [] and rep2.already_collected == 6 and rep2.duplicates == 1
    assert (
        site.hits["/photos/a.jpg"] == before["/photos/a.jpg"]
        and site.hits["/photos/b.png"] == before["/photos/b.png"]
    )
    assert site.hits["/missing.jpg"] == before["/missing.jpg"] + 1


def test_commons_api_is_asked_politely_and_paged(site):
    site.api_calls.clear()
    photos = list(
        category_photos(_client(), "Taj Mahal", limit=2, api_url=f"{site.base}/w/api.php")
    )
    assert [p.title for p in photos] == [
        "File:Taj 0.jpg",
        "File:Taj 1.jpg",
    ]  # PDF skipped, page 2 fetched
    first, second = site.api_calls
    assert first["gcmtitle"] == "Category:Taj Mahal" and first["gcmtype"] == "file"
    assert (
        first["maxlag"] == "5"
        and "extmetadata" in first["iiprop"]
        and first["iiurlwidth"] == "1600"
    )
    assert second["gcmcontinue"] == "page2"
    site.api_calls.clear()
    slept: list[float] = []
    client = PoliteClient(HttpSettings(min_interval=0), _session(), sleep=slept.append)
    busy = list(category_photos(client, "Busy", limit=1, api_url=f"{site.base}/w/api.php"))
    assert (
        len(busy) == 1 and len(site.api_calls) == 2 and slept == [5.0]
    )  # maxlag: waited, asked again
    with pytest.raises(FetchError, match="invalidcategory"):
        list(category_photos(_client(), "Category:Nowhere", api_url=f"{site.base}/w/api.php"))


def test_rate_limit_waits_between_requests_to_one_host(site):
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    session = _session()
    client = PoliteClient(
        HttpSettings(min_interval=1.5, retries=2, backoff=0.5),
        session,
        sleep=sleep,
        clock=lambda: now[0],
    )
    client.get(f"{site.base}/photos/a.jpg")
    client.get(f"{site.base}/photos/b.png")
    assert slept == [1.5]
    site.hits.pop("/flaky.jpg", None)
    client.get(f"{site.base}/flaky.jpg")  # 503, backoff 0.5 s, then the rate limit keeps 1.5 s
    assert slept[1:] == [1.5, 0.5, 1.0]
    with pytest.raises(FetchError, match="only http and https"):
        client.get("file:///etc/passwd")


def test_read_list_forms(tmp_path):
    p = tmp_path / "plain.csv"
    p.write_text("taj_mahal,http://h/a.jpg\nqutub_minar,http://h/b.jpg\n")
    rows, problems = read_list(p)
    assert [(r.landmark_id, r.url) for r in rows] == [
        ("taj_mahal", "http://h/a.jpg"),
        ("qutub_minar", "http://h/b.jpg"),
    ]
    assert problems == []
    (tmp_path / "bad.csv").write_text("landmark_id,name\nx,y\n")
    with pytest.raises(CollectListError, match="url or commons_category"):
        read_list(tmp_path / "bad.csv")
    with pytest.raises(CollectListError, match="cannot read"):
        read_list(tmp_path / "none.csv")


def test_collect_cli(site, tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    lst = tmp_path / "list.csv"
    lst.write_text(
        f"landmark_id,url\ntaj_mahal,{site.base}/photos/b.png\ntaj_mahal,{site.base}/missing.jpg\n"
    )
    r = runner.invoke(
        app,
        [
            "dataset",
            "collect",
            str(lst),
            str(tmp_path / "g"),
            "--delay",
            "0",
            "--retries",
            "0",
            "--user-agent",
            "test-suite/1.0 (dev@example.org)",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "Saved 1 photo to" in r.stdout and "1 failed" in r.stdout
    assert "missing.jpg: HTTP 404" in r.output
    r = runner.invoke(app, ["dataset", "collect", str(tmp_path / "nope.csv"), str(tmp_path / "g")])
    assert r.exit_code == 2 and "cannot read" in r.output

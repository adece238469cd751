"""The web service under hostile input and load: bounded pool and queue (503 + Retry-After),
bounded decodes, errors that never break the connection, admin checks before the body is read,
and schemathesis over the OpenAPI schema. Throughput and latency are measured in
``bench/load.py``, not here."""

from __future__ import annotations

import http.client
import io
import json
import shutil
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from conftest import INDIAN  # noqa: E402
from landmark_finder.recognition.recognizer import Recognizer  # noqa: E402
from landmark_finder.web import create_app  # noqa: E402
from landmark_finder.web.pool import Busy, DecodeBudget, RecognitionPool, decoded_bytes  # noqa: E402

TOKEN = "load-test-token"


def query(landmark: str, i: int = 0):
    return sorted((INDIAN / "queries" / landmark).iterdir())[i]


def png(w: int, h: int, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h), 128 if mode == "L" else (120, 130, 140)).save(buf, "PNG")
    return buf.getvalue()


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    b = "testboundary1234"
    body = (
        (
            f'--{b}\r\nContent-Disposition: form-data; name="photo"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{b}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={b}"


@pytest.fixture(scope="module")
def recognizer(small_index) -> Recognizer:
    return Recognizer.open(small_index)


class LiveServer:
    """A real uvicorn server in a thread: keep-alive connections behave as in production."""

    def __init__(self, app) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, port=self.port, log_level="critical", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        t0 = time.time()
        while not self.server.started:
            assert time.time() - t0 < 30, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)


def post(conn: http.client.HTTPConnection, name: str, data: bytes):
    body, ctype = multipart(name, data)
    conn.request("POST", "/api/recognize", body, {"Content-Type": ctype})
    r = conn.getresponse()
    return r.status, json.loads(r.read()), r


# -- the pool and the decode budget --------------------------------------------------------------


def test_pool_refuses_beyond_its_queue_and_drains():
    pool = RecognitionPool(workers=1, max_queue=1)
    gate = threading.Event()
    first = pool.submit(gate.wait, 10)  # running
    second = pool.submit(lambda: "queued")  # waiting
    with pytest.raises(Busy) as busy:
        pool.submit(lambda: "refused")
    assert busy.value.retry_after >= 1 and "try again" in str(busy.value)
    gate.set()
    assert first.result(10) is True and second.result(10) == "queued"
    for _ in range(100):
        if pool.stats().pending == 0:
            break
        time.sleep(0.01)
    s = pool.stats()
    assert (s.pending, s.completed, s.rejected) == (0, 2, 1)
    assert pool.submit(lambda: 7).result(10) == 7  # room again
    pool.shutdown()


def test_decode_budget_runs_big_images_alone():
    budget = DecodeBudget(slots=3, budget_bytes=100)
    running, peak, lock = [0], [0], threading.Lock()

    def decode():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    def big():
        with budget.reserve(80):  # two of these do not fit the budget together
            decode()

    threads = [threading.Thread(target=big) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1
    small = [threading.Thread(target=lambda: budget.run(b"not an image", decode)) for _ in range(6)]
    for t in small:
        t.start()
    for t in small:
        t.join()
    assert budget.peak_running == 3  # bounded by slots


def test_decoded_bytes_from_the_header_only():
    assert decoded_bytes(png(300, 200)) == 300 * 200 * 8
    assert decoded_bytes(b"junk") == 0


def test_full_queue_answers_503_with_retry_after(recognizer):
    app = create_app(recognizer, workers=1, max_queue=0)
    data = query("charminar").read_bytes()
    with TestClient(app) as c:
        gate = threading.Event()
        blocker = app.state.pool.submit(gate.wait, 30)  # the only worker is busy
        r = c.post("/api/recognize", files={"photo": ("a.jpg", data, "image/jpeg")})
        assert r.status_code == 503
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["detail"].startswith("server busy: try again in")
        gate.set()
        blocker.result(10)
        r = c.post("/api/recognize", files={"photo": ("a.jpg", data, "image/jpeg")})
        assert r.status_code == 200 and r.json()["landmark"]["id"] == "charminar"


# -- errors never break the connection -----------------------------------------------------------


def test_failures_answer_one_line_and_keep_the_connection(recognizer, monkeypatch):
    app = create_app(recognizer)
    good = query("hawa_mahal", 1).read_bytes()
    with LiveServer(app) as live:
        conn = live.connection()
        # extreme shapes: answered (200 when the stages handle them, else 4xx with one line)
        for w, h in ((1, 10000), (10000, 1), (2, 5000), (5000, 3), (1, 1)):
            status, body, _ = post(conn, f"{w}x{h}.png", png(w, h))
            assert status == 200 or (400 <= status < 500 and "\n" not in body["detail"]), body
        # a stage failing on an image the loader accepted: 422, one line, named
        # (a real photo: a plain one is answered by the content check before any network)
        real_describe = recognizer.describe_views

        def broken(image):
            raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Invalid input\nmore")

        monkeypatch.setattr(recognizer, "describe_views", broken)
        photo = sorted((INDIAN / "queries" / "taj_mahal").glob("*.jpg"))[0].read_bytes()
        status, body, _ = post(conn, "odd.jpg", photo)
        assert status == 422
        assert body["detail"].startswith("odd.jpg: cannot recognize (RuntimeError: ")
        assert "\n" not in body["detail"]
        monkeypatch.setattr(recognizer, "describe_views", real_describe)
        # an unexpected server error elsewhere: JSON 500, and the same connection goes on
        holder = app.state.holder
        served = holder._served
        holder._served = None
        conn.request("GET", "/health")
        r = conn.getresponse()
        assert r.status == 500 and json.loads(r.read())["detail"].startswith("internal error")
        holder._served = served
        status, body, _ = post(conn, "good.jpg", good)
        assert status == 200 and body["landmark"]["id"] == "hawa_mahal"
        conn.close()


# -- admin checks before the body ----------------------------------------------------------------


@pytest.fixture(scope="module")
def admin_app(small_index, tmp_path_factory):
    root = tmp_path_factory.mktemp("admin-load")
    shutil.copytree(small_index, root / "index")
    app = create_app(root / "index", admin_token=TOKEN)
    app.uploads = root / "uploads"
    app.index_dir = root / "index"
    return app


def raw_request(port: int, head: str, timeout: float = 10.0) -> tuple[int, dict, float]:
    """Send only a request head announcing a 400 MB body; the answer must come without it."""
    t0 = time.time()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    body = json.loads(data.split(b"\r\n\r\n", 1)[1])
    return status, body, time.time() - t0


@pytest.mark.parametrize(
    "auth,path,expected",
    [
        ("", "/api/landmarks/taj_mahal/photos", 401),
        ("Authorization: Bearer wrong\r\n", "/api/landmarks/taj_mahal/photos", 401),
        (f"Authorization: Bearer {TOKEN}\r\n", "/api/landmarks/%20/photos", 422),
        (f"Authorization: Bearer {TOKEN}\r\n", "/api/landmarks/..%2Fx/photos", 422),
    ],
)
def test_admin_refuses_before_reading_the_body(admin_app, auth, path, expected):
    with LiveServer(admin_app) as live:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}"
            "Content-Type: multipart/form-data; boundary=zz\r\n"
            "Content-Length: 400000000\r\n\r\n"
        )
        status, body, seconds = raw_request(live.port, head)
    assert status == expected and seconds < 5
    assert "\n" not in body["detail"]


def test_blank_id_shows_no_server_path_and_leaves_no_folder(admin_app):
    with TestClient(admin_app) as c:
        for landmark_id in ("%20", "%20x", "x%20"):
            r = c.post(
                f"/api/landmarks/{landmark_id}/photos",
                headers={"Authorization": f"Bearer {TOKEN}"},
                files=[("photos", ("a.jpg", query("charminar").read_bytes(), "image/jpeg"))],
            )
            assert r.status_code == 422, r.text
            detail = r.json()["detail"]
            assert str(admin_app.index_dir.parent) not in detail and "/tmp" not in detail
        assert not admin_app.uploads.exists() or not any(admin_app.uploads.iterdir())
        r = c.delete("/api/landmarks/%20/photos", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 422


# -- schemathesis --------------------------------------------------------------------------------


def test_schemathesis_finds_no_server_error(small_index, tmp_path):
    """Every operation of the OpenAPI schema, with generated valid and invalid requests, in
    process (ASGI), with the admin token on a private copy of the index: no 5xx."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, settings
    from schemathesis.checks import not_a_server_error

    shutil.copytree(small_index, tmp_path / "index")
    app = create_app(tmp_path / "index", admin_token=TOKEN)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy()

        @settings(
            max_examples=20,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given_case(strategy)
        def check(case):
            nonlocal ran
            ran += 1
            response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")
            case.validate_response(response, checks=[not_a_server_error])

        check()
    assert ran > 40 and not failures, failures


def given_case(strategy):
    from hypothesis import given

    return given(case=strategy)

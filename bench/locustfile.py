"""Locust clients for ``bench/load.py``: each posts real photos to ``/api/recognize`` back to back.

A client that gets 503 waits the ``Retry-After`` seconds the server asked for, as a well-behaved
app would, and tries again. 503 answers are not failures for Locust; every request's outcome is
appended to the CSV file named by ``LOAD_LOG`` (time, status, seconds) for ``load.py`` to sum up.
Photos are listed one path a line in the file named by ``LOAD_PHOTOS``.
"""

from __future__ import annotations

import os
import random
import threading
import time

from locust import FastHttpUser, events, task

_BOUNDARY = "landmarkfinderloadbench"
_photos: list[tuple[str, bytes]] = []
_log_lock = threading.Lock()
_log = None


def _body(name: str, data: bytes) -> bytes:
    head = (
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="photo"; filename="{name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{_BOUNDARY}--\r\n".encode()


@events.init.add_listener
def _load(**_kw) -> None:
    global _log
    with open(os.environ["LOAD_PHOTOS"]) as f:
        for path in f.read().split("\n"):
            if path:
                with open(path, "rb") as p:
                    _photos.append(
                        (os.path.basename(path), _body(os.path.basename(path), p.read()))
                    )
    _log = open(os.environ["LOAD_LOG"], "a", buffering=1)  # noqa: SIM115 (closed at quit)


@events.quitting.add_listener
def _close(**_kw) -> None:
    if _log is not None:
        _log.close()


class Photographer(FastHttpUser):
    connection_timeout = 30.0
    network_timeout = 60.0

    @task
    def recognize(self) -> None:
        name, body = random.choice(_photos)
        t0 = time.perf_counter()
        with self.client.post(
            "/api/recognize",
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={_BOUNDARY}"},
            name="/api/recognize",
            catch_response=True,
        ) as r:
            dt = time.perf_counter() - t0
            status = r.status_code or 0
            error = "" if status else " ".join(repr(r.error).replace(",", ";").split())[:200]
            with _log_lock:
                _log.write(f"{time.time():.3f},{status},{dt:.4f},{error}\n")
            if status == 503:
                r.success()
                wait = r.headers.get("Retry-After", "1")
                time.sleep(float(wait) if wait.isdigit() else 1.0)
            elif status != 200:
                r.failure(f"HTTP {status}: {(r.text or '')[:200]}")

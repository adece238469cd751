"""ASGI guards that act before an endpoint runs or after it fails.

``ErrorBoundary``: an exception escaping an endpoint used to reach uvicorn, which logs it and,
because Starlette had already sent its 500, closes the connection, so the client's next request
on that keep-alive connection was reset. Here it becomes a one-line JSON 500 and the exception
stops (its traceback goes to the server log), so the connection keeps serving.

``AdminGate``: FastAPI parses a multipart body before it solves an endpoint's dependencies, so
the token check of the admin endpoints ran only after up to ~400 MB had been read. The gate
checks the token, and the landmark id in the path, from the request line and headers alone and
refuses before a byte of the body is read (``Connection: close`` tells the client to stop
sending). The endpoints keep their own checks; this only answers earlier.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("landmark_finder.web")

#: ``<anything>/api/landmarks/<id>/photos`` (the admin routes; ``scope["path"]`` is decoded)
_ADMIN_PATH = re.compile(r"/api/landmarks/(?P<id>.*)/photos/?$")
_ADMIN_METHODS = ("POST", "DELETE")


async def send_json(
    send: Send,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    close: bool = False,
) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class ErrorBoundary:
    """Outermost app middleware: an unhandled exception becomes a JSON 500, never a reset."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as e:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:  # half a response is out: nothing sane can follow on this connection
                raise
            await send_json(send, 500, f"internal error: {type(e).__name__}")


#: landmark id -> problem (one line, no server paths), or None when it is acceptable
IdCheck = Callable[[str], "str | None"]


class AdminGate:
    """Refuses admin requests with a wrong token or an unusable id before the body is read."""

    def __init__(self, app: ASGIApp, token: str | None, id_problem: IdCheck) -> None:
        self.app, self.token, self.id_problem = app, token, id_problem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _ADMIN_PATH.search(scope["path"])
            if scope["type"] == "http" and scope["method"] in _ADMIN_METHODS
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        has_body = headers.get(b"content-length", b"0") not in (b"", b"0") or (
            b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        )
        refusal = self._refusal(headers.get(b"authorization", b""), match["id"])
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, detail, extra = refusal
        await send_json(send, status, detail, extra, close=has_body)

    def _refusal(self, authorization: bytes, landmark_id: str):
        if self.token is None:
            return 403, "admin endpoints disabled", None
        scheme, _, credentials = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode("latin-1"), self.token.encode()
        ):
            return 401, "missing or wrong admin token", {"WWW-Authenticate": "Bearer"}
        problem = self.id_problem(landmark_id)
        if problem:
            return 422, problem, None
        return None

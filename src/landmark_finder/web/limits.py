"""Request-body size limit, enforced while the body streams in.

Without it the multipart parser spools any upload to disk before an endpoint can look at its
size. A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked
body is cut off with 413 as soon as it passes the limit. (Recent FastAPI has a
``max_body_size`` of its own, but it answers a declared oversize body with a bare
"Content Too Large" that names no limit; this middleware gives every client the same JSON
``{"detail": "upload too large: the limit is 20 MB"}``.)
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large_message(limit: int) -> str:
    size = f"{limit / 1e6:.3g} MB" if limit >= 1e6 else f"{limit / 1e3:.3g} kB"
    return f"upload too large: the limit is {size}"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` inside body parsing; FastAPI re-raises its HTTPExceptions there
    (any other error would become a generic 400), so the client gets this 413."""

    def __init__(self, shown_limit: int) -> None:
        super().__init__(413, too_large_message(shown_limit))


#: scope -> (body limit in bytes, limit to name in the message), or None for no limit
LimitFor = Callable[[Scope], "tuple[int, int] | None"]


class BodySizeLimit:
    """Pure ASGI middleware (no buffering, no BaseHTTPMiddleware task juggling)."""

    def __init__(self, app: ASGIApp, limit_for: LimitFor) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limits = self.limit_for(scope) if scope["type"] == "http" else None
        if limits is None:
            await self.app(scope, receive, send)
            return
        limit, shown = limits
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _reply_413(send, shown)
            return
        received, started = 0, False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(shown)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:  # read outside FastAPI's body parsing (e.g. by another layer)
            if started:
                raise
            await _reply_413(send, shown)


async def _reply_413(send: Send, shown_limit: int) -> None:
    body = json.dumps({"detail": too_large_message(shown_limit)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

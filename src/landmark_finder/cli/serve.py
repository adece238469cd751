"""``landmark-finder serve INDEX``: the web service and browser app (see ``landmark_finder.web``).

Web dependencies (FastAPI, uvicorn) are imported only when the command runs, so the rest of
the CLI starts fast and works without them.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer

from landmark_finder.cli.kit import err, library_errors, need_module
from landmark_finder.i18n import _


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
    admin_token: str | None = typer.Option(
        None,
        envvar="LANDMARK_FINDER_ADMIN_TOKEN",
        show_default=False,
        show_envvar=True,
        help="Enables the endpoints that add/remove reference photos, for clients sending "
        "'Authorization: Bearer <token>'. Without it they answer 403.",
    ),
    max_upload_mb: float = typer.Option(20.0, min=0.001, help="Largest accepted photo, in MB."),
    uploads: Path | None = typer.Option(
        None,
        help="Where photos added over the API are kept, one folder per landmark "
        "(default: INDEX/../uploads).",
    ),
    workers: int | None = typer.Option(
        None,
        min=1,
        show_default=False,
        help="Photos recognized at once (default: the usable CPU cores).",
    ),
    max_queue: int | None = typer.Option(
        None,
        min=0,
        show_default=False,
        help="Uploads that may wait for a worker (default: 4 per worker); beyond that the "
        "server answers 503 with Retry-After at once.",
    ),
) -> None:
    """Serve the web API and the browser app (photo in, landmark and map out)."""

    what = _("the web service needs FastAPI and uvicorn")
    install = "pip install 'fastapi' 'uvicorn' 'python-multipart'"
    uvicorn = need_module("uvicorn", what, install)
    web = need_module("landmark_finder.web", what, install)
    with library_errors():
        app = web.create_app(
            index_dir,
            admin_token=admin_token,
            max_upload_bytes=int(max_upload_mb * 1e6),
            uploads_dir=uploads,
            workers=workers,
            max_queue=max_queue,
        )
    shown = f"[{host}]" if ":" in host else host
    admin = _("admin endpoints enabled") if admin_token else _("admin endpoints disabled")
    err.print(
        _("Serving {index} on {url}  (API docs: /docs; {admin})").format(
            index=index_dir, url=f"http://{shown}:{port}/", admin=admin
        ),
        highlight=False,
        soft_wrap=True,
    )
    if not _is_loopback(host) and admin_token:
        err.print(
            _(
                "warning: the admin token travels in clear text over plain HTTP; put a TLS "
                "proxy in front when serving beyond this machine"
            ),
            highlight=False,
        )
    import threading

    from landmark_finder.core.places import warm_up

    # The offline gazetteer takes seconds to load: load it now, not on the first tagged photo.
    threading.Thread(target=warm_up, name="gazetteer", daemon=True).start()
    from landmark_finder.web.pool import KEEP_ALIVE_S

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_S,
    )

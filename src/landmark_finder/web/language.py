"""The reader's language in the web app: ``?lang=`` when given, else the browser's
``Accept-Language``; and the page's message catalog as JSON (``GET /api/messages``)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from landmark_finder.i18n import negotiate, normalize, parse_accept_language
from landmark_finder.i18n.export import messages_json

LANG_QUERY = Query(
    None,
    max_length=35,
    pattern=r"^[A-Za-z]{2,8}([_-][A-Za-z0-9]{1,8})*$",
    description="Reader's language (ko, en, hi...): names and addresses from the catalog's "
    "name_<lang>/address_<lang> columns, falling back to name/address. Default: the "
    "Accept-Language header, else the catalog's own columns.",
)


def reader_language(request: Request, lang: str | None) -> str | None:
    """The language to name landmarks in: ``lang``, else the first ``Accept-Language`` tag;
    None (the catalog's own columns) when neither is given."""
    if lang:
        return normalize(lang)
    tags = parse_accept_language(request.headers.get("accept-language"))
    return normalize(tags[0]) if tags else None


def language_router() -> APIRouter:
    router = APIRouter()

    @router.get("/api/messages", tags=["service"])
    def messages(request: Request, lang: str | None = LANG_QUERY) -> dict[str, object]:
        """The page's texts in one language (from the same .po files as the CLI and desktop
        app): ``lang``, else the best match of ``Accept-Language``, else English."""
        tags = [lang] if lang else parse_accept_language(request.headers.get("accept-language"))
        return messages_json(negotiate(tags))

    return router

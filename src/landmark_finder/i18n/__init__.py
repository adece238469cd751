"""Message catalogs: every text a person reads goes through gettext, so that adding a language
is adding a ``.po`` file under ``locale/<lang>/LC_MESSAGES/landmark_finder.po``.

English is the source language (the msgids); other languages are translations. The ``.po`` files
are compiled to ``.mo`` at set-up time (``make setup`` runs ``pybabel compile``); a catalog whose
``.mo`` is missing or older than its ``.po`` is compiled in memory on first use, so a checkout
run from its sources still speaks every language it has.

The shells pick the language (CLI ``--lang``/``LANG``, browser ``Accept-Language`` and an
on-page switch, desktop system locale and a menu) and call :func:`set_language`, or, where one
process serves many readers (the web app), use :func:`translator` per request.
"""

from __future__ import annotations

import gettext as _gettext
import io
import os
import threading
from collections.abc import Iterable
from functools import cache
from pathlib import Path

DOMAIN = "landmark_finder"
LOCALE_DIR = Path(__file__).parent / "locale"
SOURCE_LANGUAGE = "en"

_current = threading.local()
_default = [SOURCE_LANGUAGE]


def languages() -> list[str]:
    """The languages the interface speaks: English plus every language with a ``.po`` file."""
    found = sorted(
        p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po") if p.is_file()
    )
    return [SOURCE_LANGUAGE, *(lang for lang in found if lang != SOURCE_LANGUAGE)]


def normalize(tag: str) -> str:
    """``ko_KR.UTF-8``, ``ko-KR``, ``KO`` -> ``ko``: the interface has one catalog per language."""
    tag = tag.strip().split(".")[0].split("@")[0].replace("-", "_")
    return tag.split("_")[0].lower()


def negotiate(preferred: Iterable[str], default: str = SOURCE_LANGUAGE) -> str:
    """The first of the reader's preferred languages the interface speaks, else ``default``."""
    have = set(languages())
    for tag in preferred:
        if tag and (lang := normalize(tag)) in have:
            return lang
    return default


def parse_accept_language(header: str | None) -> list[str]:
    """``Accept-Language`` value -> language tags, most preferred first (q-values honoured)."""
    tags: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and tag != "*" and q > 0:
            tags.append((-q, i, tag))
    return [tag for _, _, tag in sorted(tags)]


def from_environment(environ: dict[str, str] | None = None) -> str:
    """The language of the system locale: ``LANGUAGE`` (a ``:`` list), ``LC_ALL``,
    ``LC_MESSAGES``, ``LANG``, as gettext reads them; English when none names a known one."""
    env = os.environ if environ is None else environ
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        if value := env.get(var):
            if value in ("C", "POSIX") or value.startswith("C."):
                return SOURCE_LANGUAGE
            return negotiate(value.split(":"))
    return SOURCE_LANGUAGE


def _po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translator(lang: str) -> _gettext.NullTranslations:
    """The gettext translations of one language (English: the msgids themselves)."""
    lang = normalize(lang)
    po = _po_path(lang)
    if lang == SOURCE_LANGUAGE or not po.is_file():
        return _gettext.NullTranslations()
    mo = po.with_suffix(".mo")
    if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as f:
            return _gettext.GNUTranslations(f)
    return _gettext.GNUTranslations(io.BytesIO(compile_po(po)))


def compile_po(po: Path) -> bytes:
    """A ``.po`` file compiled to ``.mo`` bytes (Babel), fuzzy entries left out as gettext does."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as f:
        catalog = read_po(f)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    return buf.getvalue()


def set_language(lang: str | None, *, this_thread_only: bool = False) -> str:
    """Make ``lang`` (normalised; unknown -> English; None -> the system locale) the language of
    :func:`_`/:func:`ngettext`, for the process or only the calling thread. Returns it."""
    chosen = from_environment() if lang is None else negotiate([lang])
    if this_thread_only:
        _current.lang = chosen
    else:
        _default[0] = chosen
    return chosen


def current_language() -> str:
    return getattr(_current, "lang", None) or _default[0]


def _(message: str) -> str:
    """``message`` in the current language."""
    return translator(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural (per the language's plural rule) of a message, for count ``n``."""
    return translator(current_language()).ngettext(singular, plural, n)


def n_photos(n: int) -> str:
    """``12 photos`` in the current language (plural forms by the language's rule)."""
    return ngettext("{n} photo", "{n} photos", n).format(n=n)


def n_landmarks(n: int) -> str:
    """``3 landmarks`` in the current language."""
    return ngettext("{n} landmark", "{n} landmarks", n).format(n=n)


def N_(message: str) -> str:
    """Mark a message for extraction where it is defined; translate it where it is shown."""
    return message

"""The message catalog of one language as JSON, for the browser page.

The page is plain script with no build step, so it cannot read ``.mo`` files; the web app serves
this JSON (``GET /api/messages?lang=ko``), made from the same ``.po`` files as the Python side.
Plural forms: the browser knows each language's CLDR plural category (``Intl.PluralRules``), and
``plural`` maps each category to the index of the gettext form, worked out here from the
catalog's own ``Plural-Forms`` rule.
"""

from __future__ import annotations

from functools import cache

from babel import Locale, UnknownLocaleError
from babel.messages.pofile import read_po

from landmark_finder.i18n import SOURCE_LANGUAGE, _po_path, languages, normalize, translator


def language_name(lang: str) -> str:
    """The language's own name for itself ("한국어", "English"), for a language menu."""
    try:
        return Locale.parse(lang).get_display_name(lang) or lang
    except (ValueError, UnknownLocaleError):
        return lang


def plural_map(lang: str) -> dict[str, int]:
    """CLDR plural category -> index of the gettext plural form, for 0..199 as samples."""
    try:
        rule = Locale.parse(lang).plural_form
    except (ValueError, UnknownLocaleError):
        return {"one": 0, "other": 1}
    t = translator(lang)
    index = getattr(t, "plural", lambda n: int(n != 1))
    out: dict[str, int] = {}
    for n in range(200):
        out.setdefault(rule(n), index(n))
    return out


@cache
def messages_json(lang: str) -> dict[str, object]:
    """``{"lang", "languages", "plural", "messages"}``; messages maps msgid -> text, or for a
    plural message msgid -> list of forms. English (the source) has no messages: the page
    falls back to the msgid."""
    lang = normalize(lang)
    if lang not in languages():
        lang = SOURCE_LANGUAGE
    messages: dict[str, object] = {}
    po = _po_path(lang)
    if lang != SOURCE_LANGUAGE and po.is_file():
        with po.open("rb") as f:
            catalog = read_po(f)
        for m in catalog:
            if not m.id or m.fuzzy:
                continue
            if isinstance(m.id, tuple | list):
                forms = list(m.string)
                if all(forms):
                    messages[m.id[0]] = forms
            elif m.string:
                messages[m.id] = m.string
    return {
        "lang": lang,
        "languages": [{"code": code, "name": language_name(code)} for code in languages()],
        "plural": plural_map(lang),
        "messages": messages,
    }

"""Babel extractor for the web page's HTML: texts of elements marked ``data-i18n`` and the
attributes named in ``data-i18n-attr`` (the page's ``i18n.js`` translates exactly those), so
``pybabel extract`` finds the page's static texts next to the Python and JavaScript ones."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from typing import IO, Any

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


class _Marked(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self._open: list[tuple[str, int, list[str]] | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        line = self.getpos()[0]
        for name in (a.get("data-i18n-attr") or "").split(","):
            if name.strip() and a.get(name.strip()):
                self.found.append((line, a[name.strip()] or ""))
        if tag not in _VOID:
            self._open.append((tag, line, []) if "data-i18n" in a else None)

    def handle_endtag(self, tag: str) -> None:
        if self._open and (top := self._open.pop()) is not None:
            text = " ".join("".join(top[2]).split())
            if text:
                self.found.append((top[1], text))

    def handle_data(self, data: str) -> None:
        for entry in self._open:
            if entry is not None:
                entry[2].append(data)


def extract_html(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: dict[str, Any]
) -> Iterator[tuple[int, str | None, str, list[str]]]:
    """Babel extraction method, named in ``babel.cfg``'s ``[extractors]`` section."""
    parser = _Marked()
    parser.feed(fileobj.read().decode(options.get("encoding", "utf-8")))
    parser.close()
    for line, text in parser.found:
        yield line, None, text, []

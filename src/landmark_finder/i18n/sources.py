"""The messages in the code, extracted with Babel as ``pybabel extract -F babel.cfg`` does:
what a translation must cover. The missing-translation test and ``make messages`` use it."""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg

from landmark_finder.i18n import DOMAIN

#: Call names whose string arguments are messages (``ngettext``: singular and plural).
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def extract(root: Path) -> Catalog:
    """Every message in the repository at ``root`` (mapping: ``root/babel.cfg``)."""
    with (root / "babel.cfg").open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    catalog = Catalog(domain=DOMAIN, project="landmark-finder")
    for _file, lineno, message, comments, context in extract_from_dir(
        root, method_map, options_map, keywords=KEYWORDS, strip_comment_tags=True
    ):
        catalog.add(message, None, [(_file, lineno)], auto_comments=comments, context=context)
    return catalog


def missing(template: Catalog, translations: Catalog) -> list[str]:
    """Messages of ``template`` with no (non-fuzzy, complete) translation in ``translations``."""
    out = []
    for m in template:
        if not m.id:
            continue
        t = translations.get(m.id, m.context)
        strings = (
            list(t.string)
            if t is not None and isinstance(t.string, tuple | list)
            else [t and t.string]
        )
        if t is None or t.fuzzy or not all(strings):
            out.append(m.id[0] if isinstance(m.id, tuple | list) else m.id)
    return out

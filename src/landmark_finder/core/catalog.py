"""Landmark catalog: maps a landmark id (= its gallery folder name) to what the user is told.

The catalog is kept apart from the gallery so that names, addresses and coordinates can be
edited without re-indexing photos. It is a plain CSV because the people who maintain it edit
it in spreadsheets; hence the forgiving parsing (BOM, blank rows, extra columns) and the
strict, line-numbered validation (a typo must not silently become a wrong answer).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from landmark_finder.core.atomic import write_text_atomic
from landmark_finder.errors import CatalogError

BASE_COLUMNS = ("id", "name", "address", "latitude", "longitude")
#: Optional plain-text columns, written only when some row has a value, in this order.
EXTRA_COLUMNS = ("description", "url", "wikidata", "country", "site")
#: Per-language columns (``name_ko``, ``address_en``) and provenance columns (``source_address``):
#: prefix -> Landmark attribute holding the dict keyed by the rest of the column name.
DICT_COLUMNS = {"name_": "names", "address_": "addresses", "source_": "sources"}
_WIKIDATA_ID = re.compile(r"Q[1-9][0-9]*")


@dataclass(frozen=True)
class Landmark:
    """One catalog entry. `names` holds localised names keyed by language ("ko", "hi", "local")."""

    id: str
    name: str
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    # hash=False keeps Landmark hashable despite the dict; equality still compares it.
    names: dict[str, str] = field(default_factory=dict, hash=False)
    description: str = ""
    url: str = ""
    wikidata: str = ""  # Wikidata item id ("Q12345"): links the landmark to open data
    country: str = ""
    site: str = ""  # landmarks that stand together (one complex) share a site name
    addresses: dict[str, str] = field(default_factory=dict, hash=False)  # by language
    # Where enriched fields came from ("address" -> "nominatim:way/123"); kept so that a
    # person can check or redo them, never shown as the answer.
    sources: dict[str, str] = field(default_factory=dict, hash=False)

    def name_in(self, lang: str | None) -> str:
        """The name for a reader of ``lang`` (``name_<lang>`` column), falling back to ``name``."""
        return (self.names.get(lang) if lang else None) or self.name

    def address_in(self, lang: str | None) -> str:
        """The address for a reader of ``lang`` (``address_<lang>``), else ``address``."""
        return (self.addresses.get(lang) if lang else None) or self.address

    def localized(self, lang: str | None) -> Landmark:
        """This landmark as a reader of ``lang`` sees it: ``name``/``address`` in that language
        when the catalog has them (the other languages stay in ``names``/``addresses``)."""
        if not lang:
            return self
        return replace(self, name=self.name_in(lang), address=self.address_in(lang))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict; optional fields appear only when set, to keep output short."""
        out: dict[str, object] = {
            "id": self.id,
            "name": self.name,
            "address": self.address,
            "latitude": self.latitude,
            "longitude": self.longitude,
        }
        for key in ("names", "addresses", *EXTRA_COLUMNS):
            if value := getattr(self, key):
                out[key] = dict(value) if isinstance(value, dict) else value
        return out


class Catalog:
    """Ordered mapping id -> Landmark; iterating yields Landmarks (what callers want)."""

    def __init__(self, landmarks: Iterable[Landmark] = ()) -> None:
        self._by_id: dict[str, Landmark] = {}
        for landmark in landmarks:
            self.add(landmark)

    def add(self, landmark: Landmark) -> None:
        if landmark.id in self._by_id:
            raise CatalogError([f"duplicate id {landmark.id!r}"])
        self._by_id[landmark.id] = landmark

    def __getitem__(self, id: str) -> Landmark:
        return self._by_id[id]

    def __contains__(self, id: object) -> bool:
        return id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Landmark]:
        return iter(self._by_id.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Catalog) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Catalog({len(self)} landmarks)"

    def get(self, id: str, default: Landmark | None = None) -> Landmark | None:
        return self._by_id.get(id, default)

    @property
    def ids(self) -> list[str]:
        return list(self._by_id)

    @classmethod
    def from_folder_names(cls, names: Iterable[str]) -> Catalog:
        """A bare catalog for a gallery that has none: each folder name is its own display name."""
        return cls(Landmark(id=n, name=n) for n in names)

    def with_gallery(self, folder_ids: Iterable[str]) -> tuple[Catalog, list[str]]:
        """Add a bare entry for each gallery folder without a row, so every class can be named.

        Rows without photos are kept: they cannot be predicted, but they still name the
        landmark when a caller looks it up.
        """
        merged, warnings = Catalog(self), []
        for folder in folder_ids:
            if folder not in merged:
                merged.add(Landmark(id=folder, name=folder))
                warnings.append(
                    f"gallery folder {folder!r} has no catalog row; "
                    "using the folder name as its name"
                )
        return merged, warnings


def id_problem(id: str) -> str | None:
    """Ids double as folder names, so anything that is not a single visible path part is refused."""
    if not id:
        return "missing id"
    if "/" in id or "\\" in id or id.startswith("."):
        return f"id {id!r} must not contain '/' or '\\' or start with '.'"
    return None


def _coordinate(raw: str, what: str, limit: float, problems: list[str]) -> float | None:
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{what} {raw!r} is not a number")
        return None
    if not math.isfinite(value):
        problems.append(f"{what} {raw!r} is not a finite number")
    elif not -limit <= value <= limit:
        problems.append(f"{what} {value} out of range [{-limit:g}, {limit:g}]")
    else:
        return value
    return None


def _parse_row(row: dict[str, str]) -> tuple[Landmark, list[str]]:
    """One header-CSV row -> Landmark plus its problems. save_catalog reuses it so that it never
    writes a file load_catalog would refuse."""
    problems: list[str] = []
    if problem := id_problem(row["id"]):
        problems.append(problem)
    if not row["name"]:
        problems.append("missing name")
    lat = _coordinate(row.get("latitude", ""), "latitude", 90, problems)
    lon = _coordinate(row.get("longitude", ""), "longitude", 180, problems)
    if bool(row.get("latitude")) != bool(row.get("longitude")):
        problems.append("latitude and longitude must both be given or both empty")
    dicts: dict[str, dict[str, str]] = {attr: {} for attr in DICT_COLUMNS.values()}
    for column, value in row.items():
        for prefix, attr in DICT_COLUMNS.items():
            if column.startswith(prefix) and len(column) > len(prefix) and value:
                dicts[attr][column[len(prefix) :]] = value
    wikidata = row.get("wikidata", "")
    if wikidata and not _WIKIDATA_ID.fullmatch(wikidata):
        problems.append(f"wikidata {wikidata!r} is not a Wikidata item id like 'Q12345'")
    return Landmark(
        row["id"],
        row["name"],
        row.get("address", ""),
        lat,
        lon,
        description=row.get("description", ""),
        url=row.get("url", ""),
        wikidata=wikidata,
        country=row.get("country", ""),
        site=row.get("site", ""),
        **dicts,
    ), problems


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, stripped cells) per record; blank (spreadsheet leftover) rows dropped."""
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    for row in reader:
        cells = [c.strip() for c in row]
        if any(cells):
            yield start, cells
        start = reader.line_num + 1


def _is_int(cell: str) -> bool:
    return cell.lstrip("+-").isdigit()


def load_catalog(path: str | os.PathLike[str]) -> Catalog:
    """Read a header CSV (`id,name,...`) or the headerless `index,name` Seoul format.

    All problems are collected and raised together as one CatalogError, so a hand-edited file
    can be fixed in one pass.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise CatalogError(
            [
                f"{path}: not UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start});"
                " re-save it as 'CSV UTF-8'"
            ]
        ) from None
    rows = list(_rows(text))
    if not rows:
        raise CatalogError([f"{path}: empty file"])
    problems: list[tuple[int, str]] = []
    entries: list[tuple[int, Landmark]] = []
    header = [c.lower() for c in rows[0][1]]
    if _is_int(header[0]) and not {"id", "name"} & set(header):
        seen_index: dict[str, int] = {}
        for line, cells in rows:  # headerless `index,name`: id = name, as the original folders were
            if len(cells) != 2:
                problems.append((line, f"expected 2 columns, got {len(cells)}"))
                continue
            index, name = cells
            if not _is_int(index):
                problems.append((line, f"index {index!r} is not an integer"))
            elif index in seen_index:
                problems.append(
                    (line, f"duplicate index {index} (first on line {seen_index[index]})")
                )
            seen_index.setdefault(index, line)
            if problem := ("missing name" if not name else id_problem(name)):
                problems.append((line, problem))
            else:
                entries.append((line, Landmark(id=name, name=name)))
    else:
        line = rows[0][0]
        problems += [
            (line, f"missing required column {c!r}") for c in ("id", "name") if c not in header
        ]
        problems += [
            (line, f"duplicate column {c!r}")
            for c in dict.fromkeys(header)
            if c and header.count(c) > 1
        ]
        for line, cells in rows[1:] if not problems else []:
            if len(cells) != len(header):
                problems.append((line, f"expected {len(header)} columns, got {len(cells)}"))
                continue
            landmark, row_problems = _parse_row(dict(zip(header, cells, strict=True)))
            problems += [(line, p) for p in row_problems]
            entries.append((line, landmark))
    catalog, first_line = Catalog(), {}
    for line, landmark in entries:
        if landmark.id in first_line:
            problems.append(
                (line, f"duplicate id {landmark.id!r} (first on line {first_line[landmark.id]})")
            )
        elif landmark.id:
            first_line[landmark.id] = line
            catalog.add(landmark)
    if problems:
        raise CatalogError(
            [f"{path}:{line}: {msg}" for line, msg in sorted(problems, key=lambda p: p[0])]
        )
    return catalog


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(value)  # repr round-trips floats exactly


def save_catalog(catalog: Catalog, path: str | os.PathLike[str]) -> None:
    """Write the header CSV atomically (temp file + fsync + os.replace): a crash or a full disk
    mid-write must never leave a half-written catalog in place of the good one."""
    path = Path(path)
    langs = list(dict.fromkeys(k for lm in catalog for k in lm.names if k != "local"))
    langs += ["local"] * any("local" in lm.names for lm in catalog)
    address_langs = list(dict.fromkeys(k for lm in catalog for k in lm.addresses))
    source_keys = list(dict.fromkeys(k for lm in catalog for k in lm.sources))
    extras = [c for c in EXTRA_COLUMNS if any(getattr(lm, c) for lm in catalog)]
    header = [
        *BASE_COLUMNS,
        *(f"name_{k}" for k in langs),
        *(f"address_{k}" for k in address_langs),
        *extras,
        *(f"source_{k}" for k in source_keys),
    ]
    rows = [
        [
            lm.id,
            lm.name,
            lm.address,
            _fmt(lm.latitude),
            _fmt(lm.longitude),
            *(lm.names.get(k, "") for k in langs),
            *(lm.addresses.get(k, "") for k in address_langs),
            *(getattr(lm, c) for c in extras),
            *(lm.sources.get(k, "") for k in source_keys),
        ]
        for lm in catalog
    ]
    problems = [
        f"{path}: landmark {row[0]!r}: {p}"
        for row in rows
        for p in _parse_row(dict(zip(header, [c.strip() for c in row], strict=True)))[1]
    ]
    if problems:
        raise CatalogError(problems)  # refuse before touching the good file
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    write_text_atomic(path, buf.getvalue())

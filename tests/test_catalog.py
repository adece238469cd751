"""Catalog loading, validation (with line numbers), gallery merging and atomic saving."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from landmark_finder.core.catalog import Catalog, CatalogError, Landmark, load_catalog, save_catalog

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "landmarks"
INDIAN = SHARED / "indian-monuments" / "catalog.csv"
SEOUL = SHARED / "catalogs" / "seoul-392-labels.csv"
HEADER = "id,name,address,latitude,longitude\n"


def write(tmp_path: Path, text: str | bytes, name: str = "catalog.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def error_lines(path: Path) -> list[str]:
    with pytest.raises(CatalogError) as excinfo:
        load_catalog(path)
    return str(excinfo.value).splitlines()


@pytest.mark.skipif(not INDIAN.exists(), reason="shared landmark data not available")
def test_load_indian_monuments() -> None:
    catalog = load_catalog(INDIAN)
    assert len(catalog) == 24
    assert catalog.ids[0] == "ajanta_caves"
    lotus = catalog["lotus_temple"]
    assert lotus.name == "Lotus Temple"
    assert lotus.latitude == pytest.approx(28.5535) and lotus.longitude == pytest.approx(77.2588)
    assert "New Delhi" in lotus.address
    assert lotus.to_dict() == {
        "id": "lotus_temple",
        "name": "Lotus Temple",
        "address": lotus.address,
        "latitude": 28.5535,
        "longitude": 77.2588,
    }


@pytest.mark.skipif(not SEOUL.exists(), reason="shared landmark data not available")
def test_import_headerless_seoul_labels() -> None:
    catalog = load_catalog(SEOUL)
    assert len(catalog) == 392
    second = list(catalog)[1]
    assert second.id == second.name == "63시티"
    assert catalog.ids[0] == "4.19학생혁명기념탑"
    assert "campus7" in catalog  # kept as given, not special-cased
    assert all(lm.latitude is None and lm.longitude is None for lm in catalog)


def test_round_trip_with_localised_names(tmp_path: Path) -> None:
    catalog = Catalog(
        [
            Landmark(
                "taj_mahal",
                "Taj Mahal",
                "Agra, India",
                27.1751,
                78.0421,
                {"hi": "ताज महल", "local": "ताज महल"},
                description='Mausoleum, "white" marble\nof 1653',
                url="https://example.org/taj",
            ),
            Landmark("n_seoul_tower", "N Seoul Tower", "", 37.5512, 126.9882, {"ko": "N 서울타워"}),
            Landmark("63시티", "63시티"),
        ]
    )
    path = tmp_path / "out.csv"
    save_catalog(catalog, path)
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header == "id,name,address,latitude,longitude,name_hi,name_ko,name_local,description,url"
    assert not path.read_bytes().startswith(b"\xef\xbb\xbf")
    loaded = load_catalog(path)
    assert loaded == catalog
    assert loaded["taj_mahal"].names == {"hi": "ताज महल", "local": "ताज महल"}
    assert loaded["63시티"].to_dict() == {
        "id": "63시티",
        "name": "63시티",
        "address": "",
        "latitude": None,
        "longitude": None,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_optional_columns_and_extra_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "ID,Name,notes,name_ko\n\nx,X,whatever,엑스\n,,,\n")
    catalog = load_catalog(path)
    assert catalog.ids == ["x"]
    assert catalog["x"] == Landmark("x", "X", names={"ko": "엑스"})


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("a,A,,1,2\nb,B,,1,2\na,A2,,1,2\n", 4, "duplicate id 'a' (first on line 2)"),
        ("a,A,,1,2\nb,,,1,2\n", 3, "missing name"),
        ("a,A,,1,2\nb,B,,1,2\nc,C,,123.0,2\n", 4, "latitude 123.0 out of range [-90, 90]"),
        ("a,A,,1,-180.5\n", 2, "longitude -180.5 out of range [-180, 180]"),
        ("a,A,,abc,2\n", 2, "latitude 'abc' is not a number"),
        ("a,A,,nan,2\n", 2, "latitude 'nan' is not a finite number"),
        ("a,A,,1,\n", 2, "latitude and longitude must both be given or both empty"),
        ("a,A,,1,2\nb,B,x\n", 3, "expected 5 columns, got 3"),
        ("a,A,,1,2\n../etc,E,,,\n", 3, "id '../etc' must not contain"),
        ('a,A,"multi\nline address",1,2\nb,,,,\n', 4, "missing name"),
    ],
)
def test_validation_names_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = write(tmp_path, HEADER + body)
    lines = error_lines(path)
    assert any(m.startswith(f"{path}:{line}: {message}") for m in lines), lines


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "a,,,1,2\nb,B,,999,2\na,A,,1,2\n")
    lines = error_lines(path)
    assert [m.split(": ", 1)[0] for m in lines] == [f"{path}:2", f"{path}:3", f"{path}:4"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("0,first\n1,second\n2,third,extra\n", 3, "expected 2 columns, got 3"),
        ("0,first\n1,first\n", 2, "duplicate id 'first' (first on line 1)"),
        ("0,first\n1,\n", 2, "missing name"),
        ("0,first\n0,second\n", 2, "duplicate index 0 (first on line 1)"),
        ("0,first\nx,second\n", 2, "index 'x' is not an integer"),
    ],
)
def test_headerless_validation(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    assert f"{path}:{line}: {message}" in error_lines(path)


def test_missing_id_column(tmp_path: Path) -> None:
    path = write(tmp_path, "name,address\nTaj,Agra\n")
    assert error_lines(path) == [f"{path}:1: missing required column 'id'"]


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert error_lines(path) == [f"{path}: empty file"]


def test_bom_is_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path, b"\xef\xbb\xbf" + (HEADER + "taj_mahal,ताज महल,,27.1751,78.0421\r\n").encode()
    )
    assert load_catalog(path)["taj_mahal"].name == "ताज महल"


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, (HEADER + "a,서울타워,,,\n").encode("cp949"), name="korean-excel.csv")
    [message] = error_lines(path)
    assert message.startswith(f"{path}: not UTF-8")


def test_with_gallery_adds_warned_entries_and_keeps_rows_without_photos() -> None:
    catalog = Catalog(
        [
            Landmark("taj_mahal", "Taj Mahal", latitude=27.1751, longitude=78.0421),
            Landmark("lotus_temple", "Lotus Temple"),
        ]
    )
    merged, warnings = catalog.with_gallery(["taj_mahal", "foo"])
    assert merged.ids == ["taj_mahal", "lotus_temple", "foo"]
    assert merged["foo"] == Landmark("foo", "foo")
    assert warnings == [
        "gallery folder 'foo' has no catalog row; using the folder name as its name"
    ]
    assert len(catalog) == 2  # the original is untouched


def test_catalog_mapping_api() -> None:
    catalog = Catalog.from_folder_names(["b", "a"])
    assert catalog.ids == ["b", "a"] and len(catalog) == 2 and "a" in catalog
    assert [lm.name for lm in catalog] == ["b", "a"]
    assert catalog.get("zzz") is None and catalog.get("a") == Landmark("a", "a")
    assert hash(catalog["a"]) == hash(Landmark("a", "a"))
    with pytest.raises(CatalogError, match="duplicate id 'a'"):
        catalog.add(Landmark("a", "again"))


def test_save_refuses_invalid_landmarks(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "a,A,,1,2\n")
    with pytest.raises(CatalogError, match="both be given"):
        save_catalog(Catalog([Landmark("b", "B", latitude=1.0)]), path)
    assert path.read_text(encoding="utf-8") == HEADER + "a,A,,1,2\n"


def test_atomic_save_keeps_old_file_when_replace_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, HEADER + "old,Old,,,\n")
    before = path.read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_catalog(Catalog([Landmark("new", "New")]), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["catalog.csv"]

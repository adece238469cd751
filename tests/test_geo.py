"""EXIF GPS reading and great-circle distance (landmark_finder.core.geo)."""

from __future__ import annotations

import io
from fractions import Fraction

import pytest
from PIL import Image, TiffImagePlugin

from landmark_finder.core.geo import GeoPoint, distance_km, exif_gps, gps_from_exif


def jpeg_with_gps(gps: dict | None, fmt: str = "JPEG") -> bytes:
    exif = Image.Exif()
    if gps is not None:
        exif[0x8825] = gps
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (120, 90, 60)).save(buf, fmt, exif=exif)
    return buf.getvalue()


SEOUL = {1: "N", 2: (37.0, 33.0, 5.0), 3: "E", 4: (126.0, 58.0, 40.0)}


def test_reads_degrees_minutes_seconds():
    p = exif_gps(jpeg_with_gps(SEOUL))
    assert p == pytest.approx(GeoPoint(37 + 33 / 60 + 5 / 3600, 126 + 58 / 60 + 40 / 3600))


def test_south_and_west_are_negative(tmp_path):
    path = tmp_path / "rio.jpg"
    path.write_bytes(jpeg_with_gps({1: "S", 2: (22.0, 54.0, 0.0), 3: "W", 4: (43.0, 12.0, 0.0)}))
    p = exif_gps(path)  # from a file path too
    assert p.latitude == pytest.approx(-22.9) and p.longitude == pytest.approx(-43.2)


def test_png_exif_is_read():
    assert exif_gps(jpeg_with_gps(SEOUL, "PNG")) is not None


@pytest.mark.parametrize(
    "gps",
    [
        None,  # no GPS block at all
        {1: "N", 2: (37.0, 33.0, 5.0)},  # latitude only
        {1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)},  # (0, 0): "no fix" placeholder
        {1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)},  # out of range
        {1: "X", 2: (37.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)},  # bad reference letter
        {
            1: "N",
            2: (TiffImagePlugin.IFDRational(37, 0), 0.0, 0.0),
            3: "E",
            4: (10.0, 0.0, 0.0),
        },  # x/0
    ],
)
def test_missing_or_unusable_gps_is_none(gps):
    assert exif_gps(jpeg_with_gps(gps)) is None


def test_fraction_values_byte_refs_and_bare_degrees():
    gps = {1: b"N\x00", 2: (Fraction(75, 2), 0, 0), 3: b"E\x00", 4: (Fraction(255, 2), 0, 0)}
    assert exif_gps(jpeg_with_gps(gps)) == GeoPoint(37.5, 127.5)
    assert exif_gps(jpeg_with_gps({1: "N", 2: 37.5, 3: "W", 4: 10.0})) == GeoPoint(37.5, -10.0)


def test_gps_from_exif_of_an_opened_image():
    with Image.open(io.BytesIO(jpeg_with_gps(SEOUL))) as im:
        assert gps_from_exif(im.getexif()).latitude == pytest.approx(37.5514, abs=1e-4)


@pytest.mark.parametrize("data", [b"", b"not an image", jpeg_with_gps(SEOUL)[:200]])
def test_unreadable_input_is_none_not_an_error(data):
    assert exif_gps(data) is None


def test_distance_known_values():
    london, paris = GeoPoint(51.5074, -0.1278), GeoPoint(48.8566, 2.3522)
    assert distance_km(london, paris) == pytest.approx(343.5, abs=1.0)
    assert distance_km(paris, paris) == 0.0
    # antipodes: half the circumference
    assert distance_km(GeoPoint(0, 0), GeoPoint(0, 180)) == pytest.approx(20015.1, abs=1.0)

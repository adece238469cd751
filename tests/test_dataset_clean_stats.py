"""`dataset stats` and `dataset clean` on the odd files a real collection accumulates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import need_shared
from landmark_finder.cli.main import app
from landmark_finder.dataset.clean import default_quarantine, find_offenders, quarantine
from landmark_finder.dataset.scan import landmark_of, scan_tree
from landmark_finder.dataset.stats import collection_stats

runner = CliRunner()


@pytest.fixture()
def messy(tmp_path) -> Path:
    root = tmp_path / "photos"
    for lid in ("charminar", "taj_mahal"):
        (root / lid).mkdir(parents=True)
        for p in sorted((need_shared() / "gallery" / lid).glob("*.jpg"))[:4]:
            (root / lid / p.name).symlink_to(p)
    (root / "taj_mahal" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 40)
    (root / "taj_mahal" / "README.txt").write_text("photos from the 2019 trip")
    (root / "charminar" / "icon.png").write_bytes(b"")  # replaced below by a real tiny PNG
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "charminar" / "icon.png")
    (root / "charminar" / "empty.jpg").write_bytes(b"")
    (root / "charminar" / "gone.jpg").symlink_to(root / "nowhere.jpg")  # broken link
    (root / ".hidden_dir").mkdir()
    (root / ".hidden_dir" / "x.jpg").write_bytes(b"junk")
    # A collected photo with its sidecar: the sidecar is not an offender.
    real = sorted((need_shared() / "gallery" / "india_gate").glob("*.jpg"))[0]
    (root / "charminar" / "abc.jpg").write_bytes(real.read_bytes())
    (root / "charminar" / "abc.jpg.json").write_text(json.dumps({"source_url": "http://x/abc.jpg"}))
    # Files at the top are left alone.
    (root / "catalog.csv").write_text("id,name\n")
    return root


def test_layouts_are_understood():
    assert landmark_of(("taj", "a.jpg")) == ("taj", None)
    assert landmark_of(("train", "taj", "a.jpg")) == ("taj", "train")
    assert landmark_of(("Test", "taj", "sub", "a.jpg")) == ("taj", "Test")
    assert landmark_of(("a.jpg",)) == (None, None)
    assert landmark_of(("train", "a.jpg")) == (None, None)


def test_clean_classifies_every_odd_file(messy):
    kinds = {e.rel: e.kind for e in scan_tree(messy)}
    assert kinds["charminar/abc.jpg.json"] == "sidecar" and "catalog.csv" not in kinds
    rep = find_offenders(messy)
    got = {o.rel: o.reason for o in rep.offenders}
    assert got == {
        "taj_mahal/Thumbs.db": "hidden",
        ".hidden_dir/x.jpg": "hidden",
        "taj_mahal/README.txt": "not-an-image",
        "charminar/gone.jpg": "not-an-image",
        "charminar/empty.jpg": "broken",
        "charminar/icon.png": "tiny",
    }
    assert "broken link" in next(o.detail for o in rep.offenders if o.rel == "charminar/gone.jpg")
    assert "empty file" in next(o.detail for o in rep.offenders if o.rel == "charminar/empty.jpg")


def test_quarantine_moves_sidecars_and_refuses_a_folder_inside(messy, tmp_path):
    (messy / "agra").mkdir()
    dup = messy / "agra" / "abc.jpg"  # same bytes; "agra/..." sorts first, so it is the one kept
    dup.write_bytes((messy / "charminar" / "abc.jpg").read_bytes())
    rep = find_offenders(messy)
    with pytest.raises(ValueError, match="outside the collection"):
        quarantine(rep, messy / "q")
    q = tmp_path / "elsewhere"
    moved = quarantine(rep, q)
    assert {m.offender.rel for m in moved} == {o.rel for o in rep.offenders}
    offender = next(o for o in rep.offenders if o.reason == "duplicate")
    assert (offender.rel, offender.duplicate_of) == ("charminar/abc.jpg", "agra/abc.jpg")
    assert "under another landmark (agra)" in offender.detail
    assert (q / "charminar" / "abc.jpg.json").exists() and not (
        messy / "charminar" / "abc.jpg.json"
    ).exists()
    assert dup.exists()
    assert default_quarantine(messy) == messy.parent / "photos.quarantine"
    assert find_offenders(messy).offenders == []


def test_stats_numbers_and_default_chart(messy, tmp_path, monkeypatch):
    st = collection_stats(messy)
    counts = {c.landmark: (c.photos, c.problems) for c in st.landmarks}
    assert counts == {"charminar": (5, 2), "taj_mahal": (4, 0)}
    assert st.formats == {"JPEG": 9} and st.imbalance == pytest.approx(5 / 4)
    assert (
        len(st.tiny) == 1 and len(st.broken) == 1 and len(st.junk) == 2 and len(st.not_images) == 2
    )
    assert st.duplicate_photos == 0
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["dataset", "stats", str(messy), "--no-duplicates", "-q"])
    assert r.exit_code == 0, r.output
    assert "charminar" in r.stdout and "imbalance" in r.stdout and "1.2×" in r.stdout
    assert (tmp_path / "photos-photos-per-landmark.png").read_bytes()[:4] == b"\x89PNG"
    r = runner.invoke(app, ["dataset", "stats", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "not a folder" in r.output


def test_every_command_has_help():
    for cmd in ("stats", "clean", "split", "augment", "collect"):
        r = runner.invoke(app, ["dataset", cmd, "--help"])
        assert r.exit_code == 0 and "Usage" in r.output, cmd
    r = runner.invoke(app, ["dataset", "--help"])
    assert all(c in r.output for c in ("stats", "clean", "split", "augment", "collect"))

"""Issue 4 'done when': the raw Indian-monuments layout with planted problems.

`clean` finds every planted problem and nothing else (and --apply quarantines them, idempotently),
`split` leaks no near-duplicate group across splits, `stats` draws the chart.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import need_shared
from dataset_layout import LANDMARKS, N_TEST, N_TRAIN, build_raw_layout
from landmark_finder.cli.main import app
from landmark_finder.core.images import load_image
from landmark_finder.dataset.clean import find_offenders
from landmark_finder.dataset.duplicates import find_duplicates
from landmark_finder.dataset.scan import examine_all, scan_tree

runner = CliRunner()


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("raw") / "indian-monuments-raw"
    planted = build_raw_layout(need_shared(), root)
    return root, planted


@pytest.fixture()
def raw_copy(raw, tmp_path) -> tuple[Path, dict]:
    """A private copy of the raw layout (symlinks stay symlinks) for tests that move files."""
    root, planted = raw
    dest = tmp_path / root.name
    shutil.copytree(root, dest, symlinks=True)
    return dest, planted


def test_clean_finds_every_planted_problem_and_nothing_else(raw):
    root, planted = raw
    report = find_offenders(root)
    found = {o.rel: o.reason for o in report.offenders}
    assert found == planted["offenders"]
    by_rel = {o.rel: o for o in report.offenders}
    # The copy is flagged, the original (bigger) is kept; the cross-landmark one says so.
    for original, copy in planted["pairs"]:
        assert by_rel[copy].duplicate_of == original
    assert "under another landmark (taj_mahal)" in by_rel["train/india_gate/from_taj.jpg"].detail
    assert "another split folder (train)" in by_rel["test/hawa_mahal/smaller.jpg"].detail


def test_clean_cli_reports_then_quarantines_idempotently(raw_copy):
    root, planted = raw_copy
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    r = runner.invoke(app, ["dataset", "clean", str(root), "--json", "-q"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert {o["path"] for o in doc["offenders"]} == set(planted["offenders"])
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before  # report only

    r = runner.invoke(app, ["dataset", "clean", str(root), "--apply", "-q"])
    assert r.exit_code == 0, r.output
    q = root.parent / f"{root.name}.quarantine"
    assert f"Moved {len(planted['offenders'])} files" in r.stdout.replace("\n", " ")
    for rel in planted["offenders"]:
        assert not (root / rel).exists() and (q / rel).exists()  # moved, not deleted
    with open(q / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {
        Path(r["original_path"]).relative_to(root).as_posix(): r["reason"] for r in rows
    } == planted["offenders"]
    dup = next(r for r in rows if r["original_path"].endswith("from_taj.jpg"))
    assert dup["duplicate_of"] and dup["group"] and Path(dup["quarantine_path"]).exists()
    # Originals are untouched symlinks into the shared set.
    for original, _ in planted["pairs"]:
        assert (root / original).exists()

    r = runner.invoke(app, ["dataset", "clean", str(root), "--apply", "-q"])
    assert r.exit_code == 0, r.output
    assert "nothing to clean" in r.stdout and "Moved 0 files" in r.stdout.replace("\n", " ")
    with open(q / "manifest.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(rows)  # the re-run added nothing


def test_split_never_separates_a_duplicate_group(raw, tmp_path):
    root, planted = raw
    out = tmp_path / "split"
    r = runner.invoke(
        app,
        [
            "dataset",
            "split",
            str(root),
            str(out),
            "--ratios",
            "0.5",
            "0.25",
            "0.25",
            "--seed",
            "7",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    with open(out / "split_manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    split_of = {Path(r["source"]).relative_to(root).as_posix(): r["split"] for r in rows}
    for original, copy in planted["pairs"]:
        assert split_of[original] == split_of[copy], (original, copy)
    # Broken, hidden and non-image files are not in the split.
    for rel, reason in planted["offenders"].items():
        if reason in ("hidden", "not-an-image", "broken"):
            assert rel not in split_of
    # Independent check: no duplicate group found in the output spans two splits.
    photos = examine_all(scan_tree(out))
    for g in find_duplicates(photos):
        assert len({p.entry.folder_split for p in g.members}) == 1, [p.entry.rel for p in g.members]
    # Stratified: every landmark appears in every split; files are real photos (hard links or
    # copies).
    for lid in LANDMARKS:
        for s in ("train", "val", "test"):
            assert any((out / s / lid).iterdir())
    n = len(LANDMARKS) * (N_TRAIN + N_TEST) + 4  # + the 4 planted copies that are readable
    assert len(rows) == n
    load_image(out / rows[0]["path"])


def test_stats_draws_the_chart(raw, tmp_path):
    root, planted = raw
    png = tmp_path / "chart.png"
    r = runner.invoke(app, ["dataset", "stats", str(root), "--chart", str(png), "--json", "-q"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["chart"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    chart = load_image(png)
    assert chart.width >= 800 and chart.height >= 250
    assert doc["n_landmarks"] == len(LANDMARKS)
    assert len(doc["junk"]) == 2 and len(doc["broken"]) == 2
    assert doc["exact_duplicate_groups"] == 1 and doc["near_duplicate_groups"] == 3
    assert doc["cross_landmark_groups"] == 1
    counts = {c["landmark"]: c["by_folder"] for c in doc["landmarks"]}
    assert counts["taj_mahal"] == {"train": N_TRAIN + 1, "test": N_TEST}

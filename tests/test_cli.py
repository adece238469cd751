"""The CLI contract our benchmarks drive: commands, flags, JSON keys, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import INDIAN, SHARED, SMALL_LANDMARKS
from landmark_finder import defaults
from landmark_finder.cli.main import app

runner = CliRunner()

RECOGNIZE_KEYS = {
    "image",
    "status",
    "landmark",
    "confidence",
    "candidates",
    "evidence",
    "verified",
    "error",
    "reason",
    "site",
}
EVALUATE_KEYS = {
    "top1_accuracy",
    "gap",
    "auroc",
    "coverage_at_99_precision",
    "n_known",
    "n_unknown",
    "latency_ms_p50",
}


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def queries(tmp_path_factory) -> Path:
    """3 photos of each indexed landmark, 3 of an unseen landmark, 4 non-landmark photos."""
    root = tmp_path_factory.mktemp("queries")
    for lid in SMALL_LANDMARKS:
        (root / lid).mkdir()
        for p in sorted((INDIAN / "queries" / lid).glob("*.jpg"))[:3]:
            (root / lid / p.name).symlink_to(p)
    (root / "lotus_temple").mkdir()
    for p in sorted((INDIAN / "unseen" / "lotus_temple").glob("*.jpg"))[:3]:
        (root / "lotus_temple" / p.name).symlink_to(p)
    for p in sorted((SHARED / "distractors").glob("*.jpg"))[:4]:
        (root / p.name).symlink_to(p)
    return root


def test_console_script_help():
    exe = Path(sys.executable).parent / "landmark-finder"
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for cmd in ("index", "recognize", "evaluate"):
        assert cmd in r.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["index", "build", "--help"],
        ["index", "add", "--help"],
        ["index", "remove", "--help"],
        ["recognize", "--help"],
        ["evaluate", "--help"],
    ],
)
def test_every_command_has_help(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "Usage" in r.output


def test_index_build_cli(small_gallery: Path, tmp_path: Path):
    out = tmp_path / "idx"
    (small_gallery.parent / "loose.jpg").write_bytes(b"")  # outside the gallery: not read
    r = runner.invoke(
        app,
        [
            "index",
            "build",
            str(small_gallery),
            "--catalog",
            str(INDIAN / "catalog.csv"),
            "--out",
            str(out),
            "--backbone",
            "efficientnet-lite0",
            "--size",
            "224",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "Indexed 40 photos of 5 landmarks" in r.output
    assert "small gallery (only 5 landmarks; fewer than 10 photos of" in " ".join(r.output.split())
    info = runner.invoke(app, ["index", "info", str(out)])
    assert info.exit_code == 0 and "efficientnet-lite0" in info.output
    assert f"sift, up to {defaults.MAX_KEYPOINTS} per photo" in info.output
    assert "chance level" in info.output


def test_recognize_json_contract(small_index: Path, queries: Path, tmp_path: Path):
    bad = tmp_path / "broken.jpg"
    bad.write_text("this is not a photo")
    taj = sorted((queries / "taj_mahal").iterdir())[0]
    distractor = sorted(queries.glob("*.jpg"))[0]
    r = runner.invoke(
        app,
        [
            "recognize",
            str(small_index),
            str(taj),
            str(distractor),
            str(bad),
            "--json",
            "--top-k",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = _json_lines(r.stdout)
    assert len(rows) == 3
    for row in rows:
        assert set(row) == RECOGNIZE_KEYS
        assert row["status"] in ("recognized", "unknown", "error")
        assert 0.0 <= row["confidence"] <= 1.0
    t, d, b = rows
    assert t["status"] == "recognized" and t["landmark"]["id"] == "taj_mahal"
    assert set(t["landmark"]) == {"id", "name", "address", "latitude", "longitude", "names"}
    assert t["landmark"]["name"] == "Taj Mahal" and t["error"] is None
    assert len(t["candidates"]) == 3 and set(t["candidates"][0]) == {
        "id",
        "name",
        "names",
        "score",
        "inliers",
    }
    assert d["status"] == "unknown" and d["landmark"] is None
    assert d["reason"].startswith("no landmark matched confidently") and t["reason"] is None
    assert b["status"] == "error" and "broken.jpg" in b["error"] and "\n" not in b["error"]
    assert b["landmark"] is None and b["candidates"] == []


def test_recognize_table_and_folder(small_index: Path, queries: Path):
    r = runner.invoke(app, ["recognize", str(small_index), str(queries / "charminar")])
    assert r.exit_code == 0, r.output
    assert "Charminar" in r.output


def test_evaluate_json_contract(small_index: Path, queries: Path):
    r = runner.invoke(app, ["evaluate", str(small_index), str(queries), "--json", "-q"])
    assert r.exit_code == 0, r.output
    (m,) = _json_lines(r.stdout)
    assert set(m) == EVALUATE_KEYS
    assert m["n_known"] == 15 and m["n_unknown"] == 7
    assert m["top1_accuracy"] >= 0.8
    assert 0 <= m["gap"] <= 1 and 0 <= m["auroc"] <= 1 and m["latency_ms_p50"] > 0
    few = runner.invoke(
        app,
        [
            "evaluate",
            str(small_index),
            str(queries),
            "--json",
            "-q",
            "--max-refs-per-landmark",
            "2",
        ],
    )
    assert few.exit_code == 0, few.output
    assert set(_json_lines(few.stdout)[0]) == EVALUATE_KEYS


def test_errors_are_one_line_not_tracebacks(tmp_path: Path):
    r = runner.invoke(app, ["recognize", str(tmp_path), str(tmp_path / "x.jpg")])
    assert r.exit_code == 2
    assert "not a landmark-finder index" in r.output and "Traceback" not in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name,address,latitude,longitude\na,A,,95,10\n", encoding="utf-8")
    r = runner.invoke(
        app, ["index", "build", str(tmp_path), "--catalog", str(bad), "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 2 and "bad.csv:2" in r.output and "Traceback" not in r.output

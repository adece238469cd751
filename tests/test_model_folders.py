"""Broken trained-model folders end in one line, never a traceback (fake weights, a config
without head.gem_p, a base_backbone that points back at the model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from landmark_finder.backbones.base import load
from landmark_finder.errors import LandmarkFinderError

REPO = Path(__file__).resolve().parents[1]


def model_folder(root: Path, name: str, **changes) -> Path:
    d = root / name
    d.mkdir()
    cfg = {
        "format": "landmark-finder-model",
        "format_version": 1,
        "base_backbone": "efficientnet-lite0",
        "base_weights_hash": "0" * 64,
        "head": {"in_dim": 1280, "dim": 64, "hidden": 0, "gem_p": 3.0},
        "input_size": 224,
    }
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "model.safetensors").write_bytes(b"this is not a safetensors file" * 10)
    return d


@pytest.mark.parametrize(
    ("name", "changes", "expect"),
    [
        ("fake", {}, "unreadable weights"),
        ("nogem", {"head": {"in_dim": 1280, "dim": 64}}, "missing 'head.gem_p'"),
        ("badhead", {"head": "linear"}, "invalid model config"),
        ("self", {"base_backbone": "SELF"}, "goes round in a circle"),
    ],
)
def test_broken_model_folder_is_one_line(tmp_path, name, changes, expect, monkeypatch):
    if changes.get("base_backbone") == "SELF":
        changes = {"base_backbone": f"model:{tmp_path / name}"}
    if name == "fake":  # weights hash must match to reach the weights file
        changes = {"base_weights_hash": load("efficientnet-lite0").weights_hash}
    d = model_folder(tmp_path, name, **changes)
    with pytest.raises(LandmarkFinderError) as ei:
        load(f"model:{d}")
    msg = str(ei.value)
    assert expect in msg and "\n" not in msg


def test_cli_says_one_line_for_a_circular_model(tmp_path):
    d = model_folder(tmp_path, "loop", base_backbone=f"model:{tmp_path / 'loop2'}")
    model_folder(tmp_path, "loop2", base_backbone=f"model:{d}")
    gallery = tmp_path / "g" / "a"
    gallery.mkdir(parents=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "landmark_finder.cli.main",
            "index",
            "build",
            str(gallery.parent),
            "--out",
            str(tmp_path / "idx"),
            "--model",
            str(d),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "COLUMNS": "300"},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "goes round in a circle" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

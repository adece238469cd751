"""Pictures of what the network sees: first-layer filters and feature-map channels."""

from __future__ import annotations

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import INDIAN, assert_png, need_shared
from landmark_finder.cli.main import app

runner = CliRunner()
MODEL = "efficientnet-lite0"  # the fastest backbone; the code paths are the same for all


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    from landmark_finder.core.images import load_image

    need_shared()
    return load_image(sorted((INDIAN / "queries" / "hawa_mahal").glob("*.jpg"))[0])


def test_filters_picture(tmp_path):
    from landmark_finder.explain.heatmaps import first_conv, load_backbone, save_filters

    name, conv = first_conv(load_backbone(MODEL).module)
    assert name == "net._conv_stem" and conv.in_channels == 3
    assert_png(save_filters(tmp_path / "f.png", MODEL), 200)


def test_layers_and_default_choice():
    from landmark_finder.explain.heatmaps import default_layers, layer_table

    table = {li.name: li for li in layer_table(MODEL)}
    assert table["net._conv_stem"].shape == (32, 176, 176)
    chosen = default_layers(MODEL)
    assert len(chosen) == 4 and chosen[0] == "net._blocks.0"
    assert all(table[n].shape is not None for n in chosen)
    # later layers are coarser and deeper
    assert table[chosen[-1]].shape[1] < table[chosen[0]].shape[1]
    assert table[chosen[-1]].shape[0] > table[chosen[0]].shape[0]


def test_activations_of_chosen_layers(photo, tmp_path):
    from landmark_finder.explain.heatmaps import activations, save_activations

    acts = activations(photo, ["net._blocks.2", "net._conv_head"], MODEL)
    assert list(acts) == ["net._blocks.2", "net._conv_head"]
    assert acts["net._conv_head"].shape[0] == 1280 and acts["net._conv_head"].ndim == 3
    with pytest.raises(ValueError, match="did you mean"):
        activations(photo, ["net._blokcs.2"], MODEL)
    assert_png(save_activations(tmp_path / "a.png", photo, model=MODEL), 200)


def test_cli_explain_commands(photo, tmp_path):
    out = tmp_path / "filters.png"
    r = runner.invoke(app, ["explain", "filters", "--model", MODEL, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert_png(out, 200)

    r = runner.invoke(app, ["explain", "activations", "--list-layers", "--model", MODEL])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert any(line.split()[0] == "net._blocks.0" and line.endswith("*") for line in lines[1:])

    img = tmp_path / "photo.jpg"
    photo.save(img)
    out = tmp_path / "acts.png"
    r = runner.invoke(
        app,
        [
            "explain",
            "activations",
            str(img),
            "--model",
            MODEL,
            "--layer",
            "net._blocks.5",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert_png(out, 200)

    r = runner.invoke(
        app, ["explain", "activations", str(img), "--model", MODEL, "--layer", "nope"]
    )
    assert r.exit_code == 2 and "no layer 'nope'" in r.output
    r = runner.invoke(app, ["explain", "activations", "--model", MODEL])
    assert r.exit_code == 2 and "--list-layers" in r.output
    r = runner.invoke(app, ["explain", "filters", "--model", "resnet-9000"])
    assert r.exit_code == 2 and "unknown backbone" in r.output

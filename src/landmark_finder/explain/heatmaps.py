"""Why the network says what it says: first-layer filters, feature-map channels, and heatmaps
of which parts of a photo make it match a landmark.

* :func:`filters_figure` — the first convolution's filters as small RGB pictures.
* :func:`layer_table`, :func:`activations`, :func:`activations_figure` — any layer's output
  channels for a photo (layer names are the backbone module's ``named_modules()``).
* :func:`heatmap` — the photo's similarity to a landmark's reference photos, split over the
  photo (gradient × activation at the last feature map, averaged over three scales; see
  :mod:`landmark_finder.explain.dense` for why this map and not plain Grad-CAM). The web app and the
  desktop app call exactly ``heatmap(recognizer, image, landmark_id).overlay(image)``.

Every picture is a matplotlib figure with a title (and a colour bar where colours carry a
value), written atomically as PNG.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from landmark_finder import defaults
from landmark_finder.core.figures import Figure, new_figure, save_figure
from landmark_finder.explain.dense import (
    dense_model,
    evidence,
    landmark_refs,
    resize_map,
    scales_for,
    top_landmark,
)
from landmark_finder.i18n import _

if TYPE_CHECKING:  # pragma: no cover
    from landmark_finder.backbones.base import Backbone
    from landmark_finder.recognition.recognizer import Recognizer

DEFAULT_MODEL = defaults.BACKBONE
INPUT_SIDE = defaults.INPUT_SIZE  # long side photos are fed at for activations
MAX_CHANNELS = 16  # channels shown per layer: the most active ones
HEAT_CMAP = "turbo"


@functools.lru_cache(maxsize=2)
def load_backbone(name: str = DEFAULT_MODEL) -> Backbone:
    """A backbone by name, loaded once per process (pictures of it are often asked twice)."""
    from landmark_finder import backbones

    return backbones.load(name)


# --- first-layer filters -----------------------------------------------------------------------


def first_conv(module: torch.nn.Module) -> tuple[str, torch.nn.Conv2d]:
    """The first convolution that reads the RGB image."""
    for name, m in module.named_modules():
        if isinstance(m, torch.nn.Conv2d) and m.in_channels == 3:
            return name, m
    raise ValueError(
        "this backbone has no convolution on the RGB input (a ViT's patch "
        "embedding is a Conv2d too; none was found)"
    )


def filters_figure(model: str = DEFAULT_MODEL) -> Figure:
    """Grid of the first convolution's filters, each shown as a tiny RGB picture."""
    bb = load_backbone(model)
    name, conv = first_conv(bb.module)
    w = conv.weight.detach().float().numpy()  # (out, 3, k, k)
    n, k = w.shape[0], w.shape[-1]
    cols = min(8, n)
    rows = math.ceil(n / cols)
    fig = new_figure(1.0 * cols + 0.4, 1.05 * rows + 1.0)
    fig.suptitle(
        f"{bb.name}: first convolution '{name}' — {n} filters of {k}×{k} px, "
        f"stride {conv.stride[0]}\n(RGB weights; each filter scaled to its own "
        "range, grey = 0 … colours = what it responds to)",
        fontsize=10,
    )
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        f = w[i].transpose(1, 2, 0)
        scale = max(float(np.abs(f).max()), 1e-12)
        ax.imshow(np.clip(0.5 + 0.5 * f / scale, 0, 1), interpolation="nearest")
        ax.set_title(f"#{i}", fontsize=8)
    return fig


def save_filters(path: str | Path, model: str = DEFAULT_MODEL) -> Path:
    return save_figure(filters_figure(model), path)


# --- layers and activations --------------------------------------------------------------------


@dataclass
class LayerInfo:
    name: str
    kind: str  # module class name
    shape: tuple[int, ...] | None  # output (C, h, w) for an INPUT_SIDE² input, None if not a map


def _input(bb: Backbone, img: Image.Image, side: int = INPUT_SIDE) -> torch.Tensor:
    from landmark_finder.core.descriptors import network_input

    return torch.from_numpy(
        network_input(img.convert("RGB"), side, bb.mean, bb.std, bb.size_multiple)
    )


def _run_hooked(bb: Backbone, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    modules = dict(bb.module.named_modules())
    out: dict[str, torch.Tensor] = {}
    handles = []
    for n in names:

        def hook(_m, _i, o, n=n):
            if isinstance(o, torch.Tensor):
                out[n] = o.detach()

        handles.append(modules[n].register_forward_hook(hook))
    try:
        with torch.inference_mode():
            bb.module(x)
    finally:
        for h in handles:
            h.remove()
    return out


@functools.lru_cache(maxsize=4)
def _layer_table(model: str) -> tuple[LayerInfo, ...]:
    bb = load_backbone(model)
    names = [n for n, _ in bb.module.named_modules() if n]
    outs = _run_hooked(
        bb, _input(bb, Image.new("RGB", (INPUT_SIDE, INPUT_SIDE), (128, 128, 128))), names
    )
    mods = dict(bb.module.named_modules())
    return tuple(
        LayerInfo(
            n,
            type(mods[n]).__name__,
            tuple(outs[n].shape[1:]) if n in outs and outs[n].dim() == 4 else None,
        )
        for n in names
    )


def layer_table(model: str = DEFAULT_MODEL) -> list[LayerInfo]:
    """Every named module of the backbone with its output shape (for an INPUT_SIDE² photo)."""
    return list(_layer_table(model))


def default_layers(model: str = DEFAULT_MODEL, n: int = 4) -> list[str]:
    """``n`` blocks spread from the first to the last: edges → textures → parts → objects.

    Blocks are the numbered children of sequential containers (``net._blocks.7``,
    ``features.12``) that output a feature map and are not inside another block.
    """
    table = [li for li in layer_table(model) if li.shape is not None]
    blocks = [li.name for li in table if li.name.rsplit(".", 1)[-1].isdigit()]
    top = [b for b in blocks if not any(b != o and b.startswith(o + ".") for o in blocks)]
    pool = top or [li.name for li in table]
    if len(pool) <= n:
        return pool
    return [pool[round(i * (len(pool) - 1) / (n - 1))] for i in range(n)]


def _check_layers(model: str, layers: Sequence[str]) -> None:
    table = {li.name: li for li in layer_table(model)}
    for name in layers:
        if name not in table:
            close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"{model} has no layer {name!r}{hint} (list them with --list-layers)")
        if table[name].shape is None:
            raise ValueError(f"layer {name!r} of {model} does not output a feature map")


def activations(
    image: Image.Image, layers: Sequence[str] | None = None, model: str = DEFAULT_MODEL
) -> dict[str, np.ndarray]:
    """Output ``(C, h, w)`` of each layer for the photo (default: :func:`default_layers`)."""
    layers = list(layers) if layers else default_layers(model)
    _check_layers(model, layers)
    bb = load_backbone(model)
    outs = _run_hooked(bb, _input(bb, image), layers)
    return {n: outs[n][0].float().numpy() for n in layers}


def activations_figure(
    image: Image.Image,
    layers: Sequence[str] | None = None,
    model: str = DEFAULT_MODEL,
    max_channels: int = MAX_CHANNELS,
) -> Figure:
    """The photo, then for each layer its most active channels as small images."""
    acts = activations(image, layers, model)
    cols = 8
    rows_per = [math.ceil(min(max_channels, a.shape[0]) / cols) for a in acts.values()]
    fig = new_figure(cols * 1.25 + 0.6, 2.6 + sum(r * 1.35 + 0.45 for r in rows_per))
    subs = fig.subfigures(
        len(acts) + 1, 1, height_ratios=[2.6] + [r * 1.35 + 0.45 for r in rows_per]
    )
    ax = subs[0].subplots()
    ax.imshow(image.convert("RGB"))
    ax.set_axis_off()
    subs[0].suptitle(
        f"{model}: feature-map channels, most active first "
        "(each channel scaled to its own maximum; yellow = strong)",
        fontsize=10,
    )
    for sub, (name, a), rows in zip(subs[1:], acts.items(), rows_per, strict=False):
        order = np.argsort(-a.reshape(a.shape[0], -1).mean(1))[:max_channels]
        sub.suptitle(
            f"layer {name}: {len(order)} of {a.shape[0]} channels, {a.shape[1]}×{a.shape[2]}",
            fontsize=9,
            x=0.01,
            ha="left",
        )
        axes = sub.subplots(rows, cols, squeeze=False)
        for i, axc in enumerate(axes.flat):
            axc.set_axis_off()
            if i < len(order):
                ch = a[order[i]]
                axc.imshow(
                    ch,
                    cmap="viridis",
                    vmin=min(0.0, float(ch.min())),
                    vmax=max(float(ch.max()), 1e-6),
                    interpolation="nearest",
                )
                axc.set_title(f"ch {order[i]}", fontsize=7)
    return fig


def save_activations(
    path: str | Path,
    image: Image.Image,
    layers: Sequence[str] | None = None,
    model: str = DEFAULT_MODEL,
) -> Path:
    return save_figure(activations_figure(image, layers, model), path)


# --- heatmaps ------------------------------------------------------------------------------------


@dataclass
class Heatmap:
    """Where a photo matches a landmark: ``values`` (H, W) in [0, 1] at the photo's size,
    1 at the place contributing most to the similarity ``score`` (mean similarity to the
    landmark's 3 nearest reference photos, the scale of ``Candidate.score``)."""

    values: np.ndarray
    landmark_id: str
    score: float
    landmark_name: str = ""

    def _values_for(self, image: Image.Image) -> np.ndarray:
        if self.values.shape != (image.height, image.width):
            return np.clip(resize_map(self.values, image.size), 0, 1)
        return self.values

    def overlay(self, image: Image.Image, alpha: float = 0.65) -> Image.Image:
        """The photo with the heat in colour over it; weak places keep the photo visible."""
        from matplotlib import colormaps

        v = self._values_for(image)
        rgb = np.asarray(image.convert("RGB"), np.float32) / 255.0
        colour = colormaps[HEAT_CMAP](v)[..., :3]
        a = (alpha * np.sqrt(v))[..., None]
        dimmed = rgb * (0.55 + 0.45 * np.sqrt(v))[..., None]  # darken what does not matter
        out = dimmed * (1 - a) + colour * a
        return Image.fromarray(np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8), "RGB")

    def figure(self, image: Image.Image) -> Figure:
        from matplotlib import colormaps
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        im = image.convert("RGB")
        wide = im.width >= im.height
        fig = new_figure(
            *(
                (11.0, 11.0 * im.height / (2 * im.width) + 1.3)
                if wide
                else (9.0, 9.0 * im.height / (2 * im.width) * 0.9 + 1.3)
            )
        )
        axes = fig.subplots(1, 2)
        axes[0].imshow(im)
        axes[0].set_title(_("photo"), fontsize=10)
        axes[1].imshow(self.overlay(im))
        axes[1].set_title(_("what makes it match (heatmap)"), fontsize=10)
        for ax in axes:
            ax.set_axis_off()
        cb = fig.colorbar(
            ScalarMappable(Normalize(0, 1), colormaps[HEAT_CMAP]), ax=axes[1], shrink=0.85, pad=0.02
        )
        cb.set_label(_("share of the match (1 = strongest place)"), fontsize=9)
        fig.suptitle(
            _("Why it looks like {name}: similarity {similarity}").format(
                name=self.landmark_name or self.landmark_id, similarity=f"{self.score:.2f}"
            ),
            fontsize=12,
        )
        return fig

    def save_png(self, path: str | Path, image: Image.Image) -> Path:
        """Photo and overlay side by side, with a title and a colour bar; written atomically."""
        return save_figure(self.figure(image), path)


def heatmap(recognizer: Recognizer, image: Image.Image, landmark_id: str | None = None) -> Heatmap:
    """Which parts of ``image`` make it match ``landmark_id`` (default: the top candidate).

    Raises ``ValueError`` for a landmark without reference photos in the index or a backbone
    without a feature map.
    """
    img = image.convert("RGB")
    if landmark_id is None:
        landmark_id, _ = top_landmark(recognizer, img)
    refs = landmark_refs(recognizer, landmark_id)
    index = recognizer.index
    model = dense_model(index)
    work = (
        img
        if max(img.size) <= 512
        else img.resize(
            (
                max(1, round(img.width * 512 / max(img.size))),
                max(1, round(img.height * 512 / max(img.size))),
            ),
            Image.Resampling.BILINEAR,
        )
    )
    fmaps = [model.feature_map(work, s) for s in scales_for(index, 3)]
    grid = (max(1, math.ceil(work.width / 8)), max(1, math.ceil(work.height / 8)))
    ev = evidence(model, index, fmaps, refs.mean, grid)
    values = np.clip(resize_map(ev, img.size), 0, None)
    peak = float(values.max())
    values = (values / peak if peak > 0 else values).astype(np.float32)
    score = refs.score(recognizer.describe(img))
    return Heatmap(values, refs.landmark_id, score, refs.name)

"""Dense features: the backbone's feature map of a photo, and how much each place in it adds to
the photo's similarity to a landmark. Heatmaps and ``locate`` are built on this.

The descriptor pipeline is ``trunk (CNN) → GeM → tail (L2, or a trained head) → L2 → index
whitening``. Everything after the trunk is cheap vector algebra, so the trunk runs once per
photo and scale (in ONNX Runtime, exported once and cached on disk like the extractor's graph)
and the rest — pooling, the trained head, whitening, gradients — runs on the small feature map:
in NumPy, in closed form, for a plain backbone (GeM → L2 → whitening), so ``locate`` and the
contribution heatmaps need no PyTorch once the trunk is in the ONNX cache; in PyTorch
(autograd) for a trained projection head.

*Contribution map.* For a target direction ``t`` (a landmark's whitened reference
descriptors), the similarity ``s = <desc(F), t>`` is differentiated with respect to the
feature map ``F`` (C×h×w) and each location gets ``Σ_c F[c,y,x] · ∂s/∂F[c,y,x]`` (gradient ×
activation). With GeM pooling this is an exact split of the descriptor: ``F ∂d_c/∂F`` at a
location is ``d_c`` times that location's share of channel ``c``'s pooled energy
``F^p / ΣF^p``, so the map says which places carry the channels that make the photo look like
the landmark, and which pull it away (negative). On 40 composites (a held-out landmark photo
pasted into an everyday photo, Lite2 index of 1,202 photos) it put more mean weight inside the
pasted photo than outside in 39 of 40, and 67 % of its positive mass on a region covering 22 %
of the image; Grad-CAM (channel-averaged gradients) did 38/40 and 66 %, cosine similarity of
each location's own whitened feature 37/40 and 52 % — so gradient × activation is used.

*Fused descriptors* (``<backbone>+sscd``). Each add-on's graph is cut where it pools
(``backbones.sscd.split_at_pooling``): a region is described by every part, from one pass of
each network over the photo, and the parts are fused as the index fuses a photo's (the region
of the whole map is the photo's descriptor). Contribution maps explain the backbone's part of
the similarity (its block of the whitening, :func:`backbone_part`).
"""

from __future__ import annotations

import functools
import io
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from landmark_finder.core.decision import AGGREGATE_K
from landmark_finder.core.whitening import Whitening
from landmark_finder.errors import BackboneError, DenseUnsupported, WeightsMismatchError
from landmark_finder.i18n import current_language

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from landmark_finder.backbones.sscd import Addon, PooledSplit
    from landmark_finder.recognition.index import Index
    from landmark_finder.recognition.recognizer import Recognizer

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class AddonMap:
    """A fused add-on's trunk and what follows its pooling (``backbones.sscd.split_at_pooling``),
    run on the same resized photo as the backbone's trunk."""

    name: str
    trunk: Callable[[np.ndarray], np.ndarray]  # uint8 RGB (1, H, W, 3) -> (1, C, h, w)
    split: PooledSplit


@dataclass(frozen=True, eq=False)
class DenseModel:
    """The convolutional trunk of an index's backbone plus the vector tail of its descriptor;
    for a fused descriptor (``<backbone>+sscd``) also each add-on's trunk and tail."""

    backbone: str
    weights_hash: str
    mean: np.ndarray  # (3, 1, 1)
    std: np.ndarray
    gem_p: float
    trunk: Callable[[np.ndarray], np.ndarray]  # (1, 3, H, W) -> (1, C, h, w)
    #: pooled (N, C) -> descriptor (N, D), unit length; None: plain L2 (computed in NumPy)
    tail: Callable[[torch.Tensor], torch.Tensor] | None
    runtime: str
    addons: tuple[AddonMap, ...] = ()

    def feature_map(self, img: Image.Image, long_side: int) -> np.ndarray:
        """(C, h, w) feature map of the backbone of an RGB photo resized to ``long_side``."""
        return self._backbone_map(_resized(img, long_side))

    def feature_maps(self, img: Image.Image, long_side: int) -> list[np.ndarray]:
        """The backbone's feature map and each add-on's, of the photo resized to ``long_side``:
        every part of the descriptor, for :func:`region_descriptors`."""
        img = _resized(img, long_side)
        pixels = np.asarray(img, np.uint8)[None]
        return [self._backbone_map(img), *(a.trunk(pixels)[0] for a in self.addons)]

    def _backbone_map(self, img: Image.Image) -> np.ndarray:
        a = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return self.trunk(((a - self.mean) / self.std)[None].astype(np.float32))[0]

    def descriptors(self, pooled: torch.Tensor, whitening: Whitening | None) -> torch.Tensor:
        """GeM-pooled backbone features (N, C) → the backbone's part of the search space (N,
        d), unit length (``whitening``: that part's, see :func:`backbone_part`)."""
        import torch
        import torch.nn.functional as F

        z = F.normalize(self.tail(pooled) if self.tail else pooled, dim=-1)
        if whitening is not None:
            z = (z - torch.from_numpy(whitening.mean)) @ torch.from_numpy(whitening.projection)
        return F.normalize(z, dim=-1)


def _resized(img: Image.Image, long_side: int) -> Image.Image:
    w, h = img.size
    s = long_side / max(w, h)
    size = (max(32, round(w * s)), max(32, round(h * s)))
    return img.resize(size, Image.Resampling.BICUBIC) if size != img.size else img


def backbone_part(index: Index, target: np.ndarray) -> tuple[Whitening | None, np.ndarray]:
    """The backbone's part of the index's search space: its whitening and ``target``'s part,
    unit length. On a plain index that is the whole space; on a fused one the first block
    (what a contribution map of the backbone's feature map can explain)."""
    t = np.asarray(target, np.float32)
    w = index.whitening
    if not index.blocks:
        return w, t
    d_in = index.blocks[0]
    if w is not None:
        d_out = w.blocks[0] if w.blocks else w.projection.shape[1]
        w = Whitening(w.mean[:d_in], w.projection[:d_in, :d_out])
    else:
        d_out = d_in
    t = t[:d_out]
    return w, (t / max(float(np.linalg.norm(t)), 1e-12)).astype(np.float32)


def dense_model(index: Index) -> DenseModel:
    """The dense model for an index's backbone, loaded once per process and backbone."""
    return _dense_model(index.backbone, index.weights_hash, float(index.preprocessing.gem_p))


@functools.lru_cache(maxsize=2)
def _dense_model(backbone: str, weights_hash: str, gem_p: float) -> DenseModel:
    from landmark_finder.backbones.sscd import split_name

    _, addons = split_name(backbone)
    model = _cached_dense_model(backbone, weights_hash, gem_p) or _built_dense_model(
        backbone, weights_hash, gem_p
    )
    return replace(model, addons=tuple(_addon_map(a) for a in addons)) if addons else model


def _addon_map(addon: Addon) -> AddonMap:
    """``addon`` cut where it pools, cached on disk like the trunks (the cut itself, shape
    inference over a ResNet-50 graph, takes ~1 s; reading it back ~0.1 s)."""
    from landmark_finder.backbones.base import file_sha256
    from landmark_finder.backbones.sscd import PooledSplit, split_at_pooling
    from landmark_finder.core.atomic import write_bytes_atomic
    from landmark_finder.core.descriptors import _onnx_runner, onnx_cache_path

    path = onnx_cache_path(f"dense-addon|{addon.name}|{file_sha256(addon.path())}", "dense-")
    tail_path = path.with_suffix(".npz")
    try:
        with np.load(tail_path, allow_pickle=False) as z:
            split = PooledSplit(
                path.read_bytes(), float(z["gem_p"]), float(z["eps"]), z["weight"], z["bias"]
            )
    except (OSError, KeyError, ValueError):  # not cached yet (or a damaged cache file)
        try:
            split = split_at_pooling(addon)
        except BackboneError as e:
            raise DenseUnsupported(f"{e}: heatmaps and the dense search need its map") from None
        write_bytes_atomic(path, split.trunk)  # before the tail: the tail says "complete"
        buf = io.BytesIO()
        np.savez(buf, gem_p=split.gem_p, eps=split.eps, weight=split.weight, bias=split.bias)
        write_bytes_atomic(tail_path, buf.getvalue())
    return AddonMap(addon.name, _onnx_runner(split.trunk, None, np.uint8), split)


def _built_dense_model(backbone: str, weights_hash: str, gem_p: float) -> DenseModel:
    import torch.nn.functional as F

    from landmark_finder import backbones
    from landmark_finder.backbones.layers import GeM
    from landmark_finder.backbones.sscd import fused_hash, split_name

    base, addons = split_name(backbone)
    bb = backbones.load(base)
    expected = fused_hash(bb.weights_hash, addons) if addons else bb.weights_hash
    if expected != weights_hash:
        raise WeightsMismatchError(
            f"the index was built with {backbone} weights {weights_hash[:12]}, but "
            f"the installed ones are {expected[:12]}; rebuild the index"
        )
    module = bb.module.eval()
    pool = getattr(module, "pool", None)
    if bb.output == "map":
        trunk_module, p, tail = module, gem_p, None
    elif isinstance(pool, GeM) and hasattr(module, "backbone") and hasattr(module, "head"):
        # a model trained with `landmark-finder train`: CNN → GeM → L2 → projection head
        trunk_module, p, head = module.backbone, float(pool.p), module.head

        def tail(d: torch.Tensor) -> torch.Tensor:
            return F.normalize(head(F.normalize(d, dim=-1)), dim=-1)
    else:
        raise DenseUnsupported(
            f"{backbone}: heatmaps and locate need a convolutional backbone with a feature map "
            "(efficientnet-lite0/1/2, mobilenet-v2, or a model trained on one); this one gives "
            "only a global vector"
        )
    trunk, runtime = _trunk_runner(trunk_module, _dense_key(backbone, weights_hash))
    if runtime == "onnx" and tail is None:  # what a later process needs to skip PyTorch
        from landmark_finder.core.atomic import write_bytes_atomic

        info = {"mean": list(bb.mean), "std": list(bb.std)}
        write_bytes_atomic(
            _dense_path(backbone, weights_hash).with_suffix(".json"), json.dumps(info).encode()
        )
    return DenseModel(
        backbone,
        weights_hash,
        np.asarray(bb.mean, np.float32).reshape(3, 1, 1),
        np.asarray(bb.std, np.float32).reshape(3, 1, 1),
        p,
        trunk,
        tail,
        runtime,
    )


def _dense_key(backbone: str, weights_hash: str) -> str:
    return f"dense|{backbone}|{weights_hash}"


def _dense_path(backbone: str, weights_hash: str) -> Path:
    from landmark_finder.core.descriptors import onnx_cache_path

    return onnx_cache_path(_dense_key(backbone, weights_hash), prefix="dense-")


def _cached_dense_model(backbone: str, weights_hash: str, gem_p: float) -> DenseModel | None:
    """A plain backbone's trunk straight from the ONNX cache: no PyTorch import."""
    from landmark_finder.core.descriptors import _onnx_runner

    path = _dense_path(backbone, weights_hash)
    try:
        info = json.loads(path.with_suffix(".json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not path.exists():
        return None
    return DenseModel(
        backbone,
        weights_hash,
        np.asarray(info["mean"], np.float32).reshape(3, 1, 1),
        np.asarray(info["std"], np.float32).reshape(3, 1, 1),
        gem_p,
        _onnx_runner(path, None),
        None,
        "onnx",
    )


def _trunk_runner(
    module: torch.nn.Module, key: str
) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """ONNX Runtime (about 5x faster than eager PyTorch here), PyTorch if the export fails."""
    from landmark_finder.core.descriptors import onnx_runner

    try:
        return onnx_runner(module, key, prefix="dense-"), "onnx"
    except Exception as e:  # an unusual module may not export: PyTorch still works
        log.warning("ONNX export of the feature trunk failed (%s); using PyTorch", e)

    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return run, "torch"


@dataclass
class LandmarkRefs:
    """A landmark's reference descriptors in the index's search space."""

    landmark_id: str
    name: str
    vectors: np.ndarray  # (n, d), unit rows

    @property
    def mean(self) -> np.ndarray:
        """Unit mean direction: the target the contribution maps explain."""
        m = self.vectors.mean(0)
        return (m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32)

    def score(self, z: np.ndarray) -> float:
        """Mean similarity of ``z`` to its ``AGGREGATE_K`` nearest references: the same scale
        as :attr:`Candidate.score` of a recognition."""
        sims = np.sort(self.vectors @ np.asarray(z, np.float32))[::-1]
        return float(sims[:AGGREGATE_K].mean())


def landmark_refs(recognizer: Recognizer, landmark_id: str) -> LandmarkRefs:
    index = recognizer.index
    rows = [i for i, r in enumerate(index.records) if r.landmark_id == landmark_id]
    if not rows:
        known = ", ".join(index.landmark_ids[:8]) + (", ..." if len(index.landmark_ids) > 8 else "")
        raise ValueError(
            f"landmark {landmark_id!r} has no reference photos in this index (it has: {known})"
        )
    vecs = index.project(index.descriptors[rows])
    lm = index.catalog[landmark_id] if landmark_id in index.catalog else None
    name = lm.name_in(current_language()) if lm else landmark_id  # as the reader names it
    return LandmarkRefs(landmark_id, name, np.asarray(vecs, np.float32))


def top_landmark(recognizer: Recognizer, image: Image.Image) -> tuple[str, float]:
    """The recognizer's best candidate for the photo (even when it answers "unknown")."""
    r = recognizer.recognize(image)
    if not r.candidates:
        raise ValueError(r.reason or "the index has no landmarks to compare with")
    return r.candidates[0].landmark.id, r.candidates[0].score


# --- regions pooled from one feature map ------------------------------------------------------

#: Regions of a crowded photo scored from one feature map: box widths and heights as shares of
#: the photo's, each placed at every eighth of the photo (180 boxes on a 22×17 map).
REGION_WIDTHS = (0.35, 0.5, 0.65)
REGION_HEIGHTS = (0.4, 0.6, 0.85)
REGION_STEPS = 8


def region_boxes(h: int, w: int) -> np.ndarray:
    """(N, 4) boxes (x0, y0, x1, y1) in cells of an ``h`` × ``w`` feature map, x1/y1 exclusive."""
    out = set()
    for fw in REGION_WIDTHS:
        bw = max(1, round(fw * w))
        xs = np.linspace(0, w - bw, max(2, round((1 - fw) * REGION_STEPS) + 1))
        for fh in REGION_HEIGHTS:
            bh = max(1, round(fh * h))
            ys = np.linspace(0, h - bh, max(2, round((1 - fh) * REGION_STEPS) + 1))
            out.update(
                (int(x), int(y), int(x) + bw, int(y) + bh) for y in ys.round() for x in xs.round()
            )
    return np.array(sorted(out), np.int64).reshape(-1, 4)


def region_descriptors(
    model: DenseModel, index: Index, fmaps: Sequence[np.ndarray], boxes: np.ndarray
) -> np.ndarray:
    """Descriptors (N, d) in the index's search space of the regions ``boxes`` (cells of
    ``fmaps[0]``, (C, h, w)), each GeM-pooled over its cells as the whole photo's descriptor is
    pooled over all of them: one network pass for any number of regions (R-MAC's way). On a
    fused index ``fmaps`` has every part's map (:meth:`DenseModel.feature_maps`), the same
    boxes pooled on each, and the parts fused as the index's descriptor fuses them."""
    g = _gem_boxes(fmaps[0], boxes, model.gem_p, 1e-6)
    if model.tail is not None:  # a trained head (PyTorch)
        import torch

        with torch.inference_mode():
            part = model.tail(torch.from_numpy(g)).numpy()
    else:
        part = g
    parts = [part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)]
    _, h0, w0 = fmaps[0].shape
    for addon, fm in zip(model.addons, fmaps[1:], strict=True):
        _, h, w = fm.shape
        b = np.asarray(boxes, np.float64) * (w / w0, h / h0, w / w0, h / h0)
        cells = np.round(b).astype(np.int64)
        cells[:, 2:] = np.maximum(cells[:, 2:], cells[:, :2] + 1)
        parts.append(addon.split.tail(_gem_boxes(fm, cells, addon.split.gem_p, addon.split.eps)))
    raw = np.concatenate(parts, 1) / np.float32(np.sqrt(len(parts)))
    return np.atleast_2d(index.project(raw)).astype(np.float32)


def _gem_boxes(fmap: np.ndarray, boxes: np.ndarray, p: float, eps: float) -> np.ndarray:
    """GeM of ``fmap`` (C, h, w) over each box of cells (N, 4): (N, C). Sums over a box come
    from integral images of ``F^p``, in float64 (differences of large sums)."""
    fp = np.maximum(np.asarray(fmap, np.float64), eps) ** p
    c, h, w = fp.shape
    s = np.zeros((c, h + 1, w + 1))
    s[:, 1:, 1:] = fp.cumsum(1).cumsum(2)
    x0, y0, x1, y1 = np.asarray(boxes, np.int64).T
    total = s[:, y1, x1] - s[:, y0, x1] - s[:, y1, x0] + s[:, y0, x0]
    return (np.maximum(total / ((x1 - x0) * (y1 - y0)), 1e-30) ** (1.0 / p)).T.astype(np.float32)


# --- contribution maps ------------------------------------------------------------------------


def contribution(
    model: DenseModel, index: Index, fmap: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, float]:
    """Gradient × activation of the similarity to ``target`` per location: ((h, w), similarity)."""
    whitening, target = backbone_part(index, target)
    if model.tail is None:
        return _contribution_l2(model.gem_p, whitening, fmap, target)
    import torch

    from landmark_finder.backbones.layers import gem  # imports torch: gradient path only

    f = torch.from_numpy(np.ascontiguousarray(fmap))[None].requires_grad_(True)
    z = model.descriptors(gem(f, model.gem_p), whitening)[0]
    s = z @ torch.from_numpy(target)
    (g,) = torch.autograd.grad(s, f)
    return (g * f).sum(1)[0].detach().numpy(), float(s.detach())


def _contribution_l2(
    p: float, whitening, fmap: np.ndarray, target: np.ndarray, eps: float = 1e-6
) -> tuple[np.ndarray, float]:
    """:func:`contribution` in closed form for GeM → L2 → whitening → L2 (no autograd).

    With GeM, ``F ∂g_c/∂F`` at a location is ``g_c`` times the location's share of channel
    ``c``'s pooled energy ``F^p / ΣF^p``; the rest is the chain rule through two L2
    normalisations and the linear whitening, done once on vectors.
    """
    f = np.maximum(np.asarray(fmap, np.float64), eps)  # (C, h, w)
    fp = f**p
    total = fp.sum((1, 2))
    g = (total / (f.shape[1] * f.shape[2])) ** (1.0 / p)
    ng = float(np.linalg.norm(g))
    u = g / ng
    proj = None if whitening is None else np.asarray(whitening.projection, np.float64)
    z = u if proj is None else (u - np.asarray(whitening.mean, np.float64)) @ proj
    nz = float(np.linalg.norm(z))
    zn = z / nz
    t = np.asarray(target, np.float64)
    s = float(zn @ t)
    ds_dz = (t - s * zn) / nz
    ds_du = ds_dz if proj is None else proj @ ds_dz
    ds_dg = (ds_du - float(ds_du @ u) * u) / ng
    share = fp / total[:, None, None]
    return np.tensordot(ds_dg * g, share, axes=(0, 0)).astype(np.float32), s


def resize_map(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float map to ``size`` = (width, height)."""
    return np.asarray(
        Image.fromarray(np.asarray(m, np.float32), "F").resize(size, Image.Resampling.BILINEAR)
    )


def evidence(
    model: DenseModel,
    index: Index,
    fmaps: Sequence[np.ndarray],
    target: np.ndarray,
    size: tuple[int, int],
) -> np.ndarray:
    """Positive contributions averaged over scales at ``size`` (w, h); sums to 1 (or all 0)."""
    acc = np.zeros((size[1], size[0]), np.float64)
    for fm in fmaps:
        c, _ = contribution(model, index, fm, target)
        up = np.maximum(resize_map(np.maximum(c, 0), size), 0)
        total = up.sum()
        if total > 0:
            acc += up / total
    total = acc.sum()
    return (acc / total if total > 0 else acc).astype(np.float32)


def scales_for(index: Index, n: int) -> list[int]:
    """Long sides for the dense passes: the index's size and larger (finer maps), ≥ 320 px."""
    base = max(320, int(index.preprocessing.size))
    return [int(round(base * f / 32)) * 32 for f in (1.0, 1.3, 1.6)[:n]]

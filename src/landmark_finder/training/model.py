"""Writing a trained model directory (loading it is :mod:`landmark_finder.backbones.trained`).

The layout and the loaded form are described in :mod:`landmark_finder.backbones.trained`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from landmark_finder.backbones.trained import (
    CONFIG,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS,
    DescriptorNetwork,
    read_config,
)
from landmark_finder.core.atomic import write_bytes_atomic as write_atomic


def save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    from safetensors.torch import save

    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    write_atomic(path, save(clean, metadata=metadata))


def save_model(out: Path, network: DescriptorNetwork, config: dict, with_backbone: bool) -> None:
    """Write ``model.safetensors`` (weights first) then ``config.json``."""
    tensors = {f"head.{k}": v for k, v in network.head.state_dict().items()}
    if with_backbone:
        tensors.update({f"backbone.{k}": v for k, v in network.backbone.state_dict().items()})
    save_tensors(Path(out) / WEIGHTS, tensors)
    cfg = dict(
        config,
        format=FORMAT,
        format_version=FORMAT_VERSION,
        backbone_weights="fine-tuned" if with_backbone else "pretrained",
    )
    write_atomic(Path(out) / CONFIG, json.dumps(cfg, indent=2, ensure_ascii=False).encode())


def model_preprocessing(path: str | Path):
    """The preprocessing the model was trained with (its input size and GeM p): the default
    for indexes built with it."""
    from landmark_finder.core.descriptors import Preprocessing

    cfg = read_config(path)
    return Preprocessing(size=int(cfg["input_size"]), gem_p=float(cfg["head"]["gem_p"]))

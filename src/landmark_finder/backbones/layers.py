"""Pooling and normalisation layers that turn a feature map into a global descriptor."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gem(x: torch.Tensor, p: float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """Generalised-mean pooling (Radenović et al.): between average (p=1) and max (p→∞).

    p=3 weights the strongest, most distinctive activations — the building — over the sky and
    crowd that dominate a plain average.
    """
    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


class GeM(nn.Module):
    def __init__(self, p: float = 3.0, eps: float = 1e-6, trainable: bool = False):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=trainable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem(x, self.p, self.eps)


class L2N(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1)


class DescriptorHead(nn.Module):
    """backbone → (GeM for feature maps) → L2: one unit-length vector per image.

    Exported as one graph so ONNX Runtime runs pooling and normalisation too.
    """

    def __init__(self, backbone: nn.Module, output: str = "map", p: float = 3.0):
        super().__init__()
        self.backbone = backbone
        self.pool = GeM(p) if output == "map" else nn.Identity()
        self.norm = L2N()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.pool(self.backbone(x)))

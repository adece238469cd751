"""The trainable descriptor head and the losses that shape it.

Descriptor (what indexing uses): ``backbone → GeM → L2 → projection → L2``. The projection is
linear, optionally plus a residual hidden layer; it starts as the supervised whitening of
:mod:`landmark_finder.core.whitening` fitted on the training views, so training begins where the
index-time whitening would and the loss only has to improve on it.

Losses (training only; they are not part of the saved descriptor):

* **ArcFace** (Deng et al. 2019): cosine logits with an additive angular margin ``m`` on the
  true class, scaled by ``s``. It pulls a landmark's photos together and pushes landmarks
  apart *on the unit sphere* — the geometry retrieval uses — which is why the Google Landmark
  challenge winners trained with it.
* **Sub-center ArcFace** (Deng et al. 2020): ``k`` centres per class, the closest one counts,
  so a landmark seen from the front and from inside need not collapse onto one point.
* **Softmax**: a plain linear classifier with cross-entropy on the projection — the original
  project's approach, kept for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landmark_finder.backbones import trained
from landmark_finder.backbones.trained import DescriptorNetwork, HeadConfig
from landmark_finder.registry import Registry
from landmark_finder.training.config import LOSSES


class ProjectionHead(trained.ProjectionHead):
    """The saved model's projection head plus its training-only initialisation."""

    def init_from_whitening(self, x: np.ndarray, labels: np.ndarray) -> bool:
        """Start the linear projection as the supervised whitening of ``x``; False when the
        data are too few to fit one (or ``dim`` exceeds the input dimension)."""
        from landmark_finder.core.whitening import fit_whitening

        w = fit_whitening(x, labels, dim=self.cfg.dim)
        if w is None or w.projection.shape[1] < self.cfg.dim:
            return False
        proj = torch.from_numpy(np.ascontiguousarray(w.projection.T))  # (dim, in_dim)
        # Whitened vectors have unit variance per direction; scale so that the L2-normalised
        # output is unchanged but weights stay near the scale of a default initialisation.
        scale = 1.0 / float(proj.norm(dim=1).mean())
        with torch.no_grad():
            self.linear.weight.copy_(proj * scale)
            self.linear.bias.copy_(-(proj @ torch.from_numpy(w.mean)) * scale)
        return True


class ArcFace(nn.Module):
    """Additive angular margin loss; ``subcenters > 1`` gives sub-center ArcFace."""

    def __init__(
        self,
        dim: int,
        n_classes: int,
        scale: float = 30.0,
        margin: float = 0.3,
        subcenters: int = 1,
    ):
        super().__init__()
        self.n_classes, self.k = n_classes, max(1, subcenters)
        self.scale, self.margin = scale, margin
        self.weight = nn.Parameter(torch.empty(n_classes * self.k, dim))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """Cosine of each embedding to each class (its closest sub-centre): ``(N, C)``."""
        cos = F.linear(F.normalize(emb, dim=-1), F.normalize(self.weight, dim=-1))
        if self.k > 1:
            cos = cos.view(-1, self.n_classes, self.k).amax(dim=-1)
        return cos

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = self.cosine(emb)
        m = self.margin
        sin = torch.sqrt((1.0 - cos.pow(2)).clamp(min=1e-7))
        phi = cos * math.cos(m) - sin * math.sin(m)  # cos(theta + m)
        # Past theta = pi - m, cos(theta + m) would increase again; use the usual linear
        # continuation so the target logit stays monotonic in the angle.
        phi = torch.where(cos > math.cos(math.pi - m), phi, cos - math.sin(math.pi - m) * m)
        onehot = F.one_hot(labels, self.n_classes).to(cos.dtype)
        logits = self.scale * (onehot * phi + (1 - onehot) * cos)
        return F.cross_entropy(logits, labels), cos

    def init_centres(self, emb: torch.Tensor, labels: torch.Tensor) -> None:
        """Start each class's centres at the mean embedding of its photos (plus a little noise
        for sub-centres), so the first epochs refine instead of searching."""
        with torch.no_grad():
            e = F.normalize(emb, dim=-1)
            for c in range(self.n_classes):
                mean = F.normalize(e[labels == c].mean(0), dim=-1)
                for j in range(self.k):
                    noise = 0.0 if j == 0 else 0.05 * torch.randn_like(mean)
                    self.weight[c * self.k + j] = F.normalize(mean + noise, dim=-1)


class SoftmaxClassifier(nn.Module):
    """A plain linear classifier with cross-entropy (the original project's head)."""

    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.fc = nn.Linear(dim, n_classes)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.fc(emb)
        return F.cross_entropy(logits, labels), logits

    def init_centres(self, emb: torch.Tensor, labels: torch.Tensor) -> None:
        pass  # nothing to gain: the classifier's scale must be learned anyway


#: Loss name -> ``factory(dim, n_classes, scale, margin, subcenters)``; the names are
#: :data:`~landmark_finder.training.config.LOSSES` (kept torch-free there for the CLI).
LOSS_FACTORIES: Registry[Callable[[int, int, float, float, int], nn.Module]] = Registry("loss")


@LOSS_FACTORIES.register("arcface")
def _arcface(dim: int, n_classes: int, scale: float, margin: float, subcenters: int) -> nn.Module:
    return ArcFace(dim, n_classes, scale, margin, 1)


@LOSS_FACTORIES.register("subcenter-arcface")
def _subcenter_arcface(
    dim: int, n_classes: int, scale: float, margin: float, subcenters: int
) -> nn.Module:
    return ArcFace(dim, n_classes, scale, margin, subcenters)


@LOSS_FACTORIES.register("softmax")
def _softmax(dim: int, n_classes: int, scale: float, margin: float, subcenters: int) -> nn.Module:
    return SoftmaxClassifier(dim, n_classes)


def make_loss(
    name: str,
    dim: int,
    n_classes: int,
    scale: float = 30.0,
    margin: float = 0.3,
    subcenters: int = 3,
) -> nn.Module:
    return LOSS_FACTORIES.get(name)(dim, n_classes, scale, margin, subcenters)


__all__ = [
    "LOSSES",
    "LOSS_FACTORIES",
    "ArcFace",
    "DescriptorNetwork",
    "HeadConfig",
    "ProjectionHead",
    "make_loss",
]

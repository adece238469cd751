"""A trained model directory loaded as a backbone (``model:<dir>``), and the inference network
it holds. Training (:mod:`landmark_finder.training`) builds on these definitions and adds the
losses; this module needs none of it.

Layout::

    MODEL_DIR/
      model.safetensors   head.* (the projection) and, after full-mode training, backbone.*
      config.json         base backbone, its weights hash, head config, input size, mean/std,
                          landmarks trained on, training summary
      checkpoint.safetensors, history.csv, curves.png   (training state and curves)

The loaded :class:`~landmark_finder.backbones.Backbone` is ``output="vector"``: it already
applies GeM, L2 and the projection, so the extractor's ONNX export, the index and recognition
use it like any other backbone. Its ``weights_hash`` is the sha256 of ``model.safetensors``, so
an index notices a retrained model. A fast-mode model stores no backbone weights; the base
backbone's own hash is checked instead, so a changed pretrained backbone is caught too.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from landmark_finder.backbones.base import Backbone, file_sha256, load, register_scheme
from landmark_finder.backbones.layers import GeM
from landmark_finder.errors import BackboneError, WeightsMismatchError

FORMAT = "landmark-finder-model"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass
class HeadConfig:
    """Everything needed to rebuild the head (stored in the model's ``config.json``)."""

    in_dim: int
    dim: int = 512
    hidden: int = 0  # 0 = linear projection; > 0 = plus a residual hidden layer this wide
    gem_p: float = 3.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HeadConfig:
        return cls(int(d["in_dim"]), int(d["dim"]), int(d.get("hidden", 0)), float(d["gem_p"]))


class ProjectionHead(nn.Module):
    """L2-normalised pooled feature ``(N, in_dim)`` → projected descriptor ``(N, dim)``
    (not normalised: the descriptor graph normalises it last).

    A linear projection, plus — with ``hidden > 0`` — a residual branch
    ``Linear → ReLU → Linear`` whose output layer starts at zero, so the head starts as the
    (whitening-initialised) linear map and learns a non-linear correction. The distinction
    matters: the index-time whitening is itself a supervised linear map that absorbs any linear
    head almost exactly (LDA is invariant to invertible linear maps), so only a non-linear head
    or a fine-tuned backbone can change what the whitened index sees.
    """

    def __init__(self, cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg
        self.linear = nn.Linear(cfg.in_dim, cfg.dim)
        self.branch: nn.Module | None = None
        if cfg.hidden > 0:
            self.branch = nn.Sequential(
                nn.Linear(cfg.in_dim, cfg.hidden),
                nn.ReLU(inplace=True),
                nn.Linear(cfg.hidden, cfg.dim),
            )
            nn.init.zeros_(self.branch[2].weight)
            nn.init.zeros_(self.branch[2].bias)

    @property
    def out_dim(self) -> int:
        return self.cfg.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return y if self.branch is None else y + self.branch(x)


class DescriptorNetwork(nn.Module):
    """backbone → (GeM for feature maps) → L2 → projection head: the trained model as one
    module, exported to ONNX like any backbone (the extractor adds the final L2)."""

    def __init__(self, backbone: nn.Module, output: str, gem_p: float, head: ProjectionHead):
        super().__init__()
        self.backbone = backbone
        self.pool: nn.Module = GeM(gem_p) if output == "map" else nn.Identity()
        self.head = head

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen-mode training input: L2-normalised pooled backbone feature."""
        return F.normalize(self.pool(self.backbone(x)), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(x))


def model_dir(spec: str | Path) -> Path:
    """``model:DIR`` or ``DIR`` → the absolute model directory."""
    s = str(spec)
    return Path(s[6:] if s.startswith("model:") else s).expanduser().resolve()


def read_config(path: str | Path) -> dict:
    """The model's ``config.json``, validated; ValueError with a one-line reason otherwise."""
    d = model_dir(path)
    f = d / CONFIG
    if not d.is_dir():
        raise BackboneError(f"{d}: model directory not found")
    if not f.is_file() or not (d / WEIGHTS).is_file():
        raise BackboneError(
            f"{d}: not a trained model (needs {CONFIG} and {WEIGHTS}); "
            "create one with `landmark-finder train`"
        )
    try:
        cfg = json.loads(f.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise BackboneError(f"{f}: unreadable ({e})") from None
    if cfg.get("format") != FORMAT:
        raise BackboneError(f"{f}: not a landmark-finder model config")
    if int(cfg.get("format_version", 0)) > FORMAT_VERSION:
        raise BackboneError(
            f"{f}: model format {cfg.get('format_version')} is newer than this "
            "landmark-finder supports; upgrade landmark-finder"
        )
    for key in ("base_backbone", "base_weights_hash", "head", "input_size"):
        if key not in cfg:
            raise BackboneError(f"{f}: missing {key!r}")
    try:
        HeadConfig.from_dict(cfg["head"])
        if int(cfg["input_size"]) < 1:
            raise ValueError("input_size must be positive")
        if not isinstance(cfg["base_backbone"], str):
            raise ValueError("base_backbone must be a backbone name")
    except KeyError as e:
        raise BackboneError(f"{f}: missing 'head.{e.args[0]}'") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise BackboneError(f"{f}: invalid model config ({e})") from None
    return cfg


#: Model directories being loaded in this thread: a ``base_backbone`` chain that comes back to
#: one of them would recurse forever.
_loading = threading.local()


def load_network(path: str | Path) -> tuple[DescriptorNetwork, Backbone, dict]:
    """(network in eval mode, the base backbone it wraps, config)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = model_dir(path)
    cfg = read_config(d)
    stack: list[Path] = getattr(_loading, "stack", [])
    if d in stack:
        chain = " → ".join(f"model:{p}" for p in [*stack[stack.index(d) :], d])
        raise BackboneError(f"{d / CONFIG}: base_backbone goes round in a circle ({chain})")
    _loading.stack = [*stack, d]
    try:
        base = load(cfg["base_backbone"])
    finally:
        _loading.stack = stack
    fine_tuned = cfg.get("backbone_weights") == "fine-tuned"
    if not fine_tuned and base.weights_hash != cfg["base_weights_hash"]:
        raise WeightsMismatchError(
            f"{d}: trained on {cfg['base_backbone']} weights {cfg['base_weights_hash'][:12]}, but "
            f"the installed ones are {base.weights_hash[:12]}; retrain the model"
        )
    try:
        tensors = load_file(str(d / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as e:
        raise BackboneError(f"{d / WEIGHTS}: unreadable weights ({e})") from None
    head = ProjectionHead(HeadConfig.from_dict(cfg["head"]))
    _load_prefixed(head, tensors, "head.", d)
    if fine_tuned:
        _load_prefixed(base.module, tensors, "backbone.", d)
    net = DescriptorNetwork(base.module, base.output, head.cfg.gem_p, head).eval()
    return net, base, cfg


def _load_prefixed(module: torch.nn.Module, tensors: dict, prefix: str, d: Path) -> None:
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    want = module.state_dict()
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    shape = sorted(k for k in set(want) & set(state) if want[k].shape != state[k].shape)
    if missing or extra or shape:
        what = "; ".join(
            f"{label}: {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", extra), ("other shape", shape))
            if keys
        )
        raise BackboneError(
            f"{d / WEIGHTS}: weights do not fit the configured model ({prefix}* {what})"
        )
    module.load_state_dict(state, strict=True)


@register_scheme("model")
def load_model_backbone(path: str | Path) -> Backbone:
    """The trained model as a backbone producing the final descriptor (``model:<dir>``)."""
    d = model_dir(path)
    net, base, cfg = load_network(d)
    return Backbone(
        name=f"model:{d}",
        module=net,
        dim=net.head.out_dim,
        mean=tuple(cfg.get("mean", base.mean)),
        std=tuple(cfg.get("std", base.std)),
        output="vector",
        weights_hash=file_sha256(d / WEIGHTS),
        size_multiple=base.size_multiple,
    )

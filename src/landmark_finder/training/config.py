"""Training settings: what ``landmark-finder train`` accepts, with its defaults.

Torch-free, so the CLI can show the defaults in its help without loading the network code.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from landmark_finder import defaults
from landmark_finder.errors import TrainingInterrupted
from landmark_finder.registry import unknown_name

__all__ = [
    "INITS",
    "LOSSES",
    "MODES",
    "RESUMABLE_CHANGES",
    "TrainConfig",
    "TrainingInterrupted",
    "default",
]

MODES = ("fast", "full")
LOSSES = ("arcface", "subcenter-arcface", "softmax")
INITS = ("whitening", "random")
#: Settings a resumed run may change (the rest must match the checkpoint).
RESUMABLE_CHANGES = ("epochs", "patience", "threads", "cache")


@dataclass
class TrainConfig:
    dataset: str
    out: str
    backbone: str = defaults.BACKBONE
    mode: str = "fast"
    loss: str = "arcface"
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dim: int = 512
    hidden: int = 0
    size: int = defaults.INPUT_SIZE
    gem_p: float = 3.0
    views: int = 8  # fast mode: 1 clean + views-1 augmented views per photo
    val_fraction: float = 0.15
    val_landmarks: int = 0  # > 0: validate on this many whole landmarks, left out of training
    patience: int = 8  # early stopping, epochs without validation improvement
    lr_patience: int = 2
    lr_factor: float = 0.3
    min_lr: float = 1e-6
    unfreeze: int = 2  # full mode: trainable last blocks of the backbone
    backbone_lr: float = 0.1  # full mode: backbone lr = lr * backbone_lr
    margin: float = 0.3
    scale: float = 30.0
    subcenters: int = 3
    init: str = "whitening"  # "whitening" | "random"
    landmarks: list[str] | None = None
    seed: int = 0
    cache: str | None = None
    threads: int | None = None

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose fast or full")
        if self.loss not in LOSSES:
            raise ValueError(unknown_name("loss", self.loss, LOSSES))
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; choose whitening or random")
        if self.backbone.startswith("model:"):
            raise ValueError("train from a pretrained backbone, not from a trained model")
        for name in ("epochs", "batch_size", "dim", "size", "views"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.lr <= 0:
            raise ValueError("the learning rate must be positive")
        if self.val_landmarks < 0:
            raise ValueError("val_landmarks must be 0 or more")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def default(name: str) -> object:
    """The default of one :class:`TrainConfig` setting (shown in the CLI's help)."""
    return next(f.default for f in fields(TrainConfig) if f.name == name)

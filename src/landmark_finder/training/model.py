"""A trained model directory, and loading it as a backbone (``model:<dir>``).

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
from pathlib import Path

import torch

from landmark_finder.backbones.base import Backbone, file_sha256
from landmark_finder.core.atomic import write_bytes_atomic as write_atomic
from landmark_finder.training.heads import DescriptorNetwork, HeadConfig, ProjectionHead

FORMAT = "landmark-finder-model"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


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


def model_dir(spec: str | Path) -> Path:
    """``model:DIR`` or ``DIR`` → the absolute model directory."""
    s = str(spec)
    return Path(s[6:] if s.startswith("model:") else s).expanduser().resolve()


def read_config(path: str | Path) -> dict:
    """The model's ``config.json``, validated; ValueError with a one-line reason otherwise."""
    d = model_dir(path)
    f = d / CONFIG
    if not d.is_dir():
        raise ValueError(f"{d}: model directory not found")
    if not f.is_file() or not (d / WEIGHTS).is_file():
        raise ValueError(
            f"{d}: not a trained model (needs {CONFIG} and {WEIGHTS}); "
            "create one with `landmark-finder train`"
        )
    try:
        cfg = json.loads(f.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{f}: unreadable ({e})") from None
    if cfg.get("format") != FORMAT:
        raise ValueError(f"{f}: not a landmark-finder model config")
    if int(cfg.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"{f}: model format {cfg.get('format_version')} is newer than this "
            "landmark-finder supports; upgrade landmark-finder"
        )
    for key in ("base_backbone", "base_weights_hash", "head", "input_size"):
        if key not in cfg:
            raise ValueError(f"{f}: missing {key!r}")
    try:
        HeadConfig.from_dict(cfg["head"])
        if int(cfg["input_size"]) < 1:
            raise ValueError("input_size must be positive")
        if not isinstance(cfg["base_backbone"], str):
            raise ValueError("base_backbone must be a backbone name")
    except KeyError as e:
        raise ValueError(f"{f}: missing 'head.{e.args[0]}'") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{f}: invalid model config ({e})") from None
    return cfg


#: Model directories being loaded in this thread: a ``base_backbone`` chain that comes back to
#: one of them would recurse forever.
_loading = threading.local()


def load_network(path: str | Path) -> tuple[DescriptorNetwork, Backbone, dict]:
    """(network in eval mode, the base backbone it wraps, config)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from landmark_finder import backbones

    d = model_dir(path)
    cfg = read_config(d)
    stack: list[Path] = getattr(_loading, "stack", [])
    if d in stack:
        chain = " → ".join(f"model:{p}" for p in [*stack[stack.index(d) :], d])
        raise ValueError(f"{d / CONFIG}: base_backbone goes round in a circle ({chain})")
    _loading.stack = [*stack, d]
    try:
        base = backbones.load(cfg["base_backbone"])
    finally:
        _loading.stack = stack
    fine_tuned = cfg.get("backbone_weights") == "fine-tuned"
    if not fine_tuned and base.weights_hash != cfg["base_weights_hash"]:
        raise ValueError(
            f"{d}: trained on {cfg['base_backbone']} weights {cfg['base_weights_hash'][:12]}, but "
            f"the installed ones are {base.weights_hash[:12]}; retrain the model"
        )
    try:
        tensors = load_file(str(d / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{d / WEIGHTS}: unreadable weights ({e})") from None
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
        raise ValueError(
            f"{d / WEIGHTS}: weights do not fit the configured model ({prefix}* {what})"
        )
    module.load_state_dict(state, strict=True)


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


def model_preprocessing(path: str | Path):
    """The preprocessing the model was trained with (its input size and GeM p): the default
    for indexes built with it."""
    from landmark_finder.core.descriptors import Preprocessing

    cfg = read_config(path)
    return Preprocessing(size=int(cfg["input_size"]), gem_p=float(cfg["head"]["gem_p"]))

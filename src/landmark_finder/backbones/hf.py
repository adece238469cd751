"""Hugging Face ``transformers`` vision models as backbones, loaded strictly offline.

``load_hf_backbone(x)`` accepts a local directory (``config.json`` + ``model.safetensors`` or
a sharded ``model.safetensors.index.json``) or a repo id that is already in the local hub
cache. The network is never touched (``local_files_only=True`` everywhere) and weights are
only read from safetensors: a checkpoint that exists only as a pickle (``pytorch_model.bin``)
is refused rather than unpickled.

The returned module maps a normalised batch ``(N, 3, H, W)`` to one global vector per image:

* CLIP (full two-tower checkpoint or vision tower only): the vision tower's ``pooler_output``,
  i.e. the post-layernorm CLS token (before the CLIP projection);
* DINOv2 and other ViT-like models with a CLS token (``AutoModel``: ViT, DeiT, ...): the CLS
  token of ``last_hidden_state`` (which already went through the final layernorm).

Inputs need not be the config's ``image_size``: position embeddings are interpolated (DINOv2
always does; for CLIP and ViT ``interpolate_pos_encoding=True`` is passed), also in the ONNX
export with dynamic height/width. Sides should be multiples of the patch size
(``Backbone.size_multiple``), which the extractor takes care of.

Refused with a clear message: SigLIP (no CLS token, and its attention-pooling head bakes the
token count into the ONNX export, which would then only work at one input size), Swin (no CLS
token), ViT-MAE (random masking in the forward pass), and anything without ``hidden_size`` and
``patch_size`` (convolutional models).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import torch
from torch import nn

from landmark_finder.backbones.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    file_sha256,
    register_scheme,
)
from landmark_finder.errors import BackboneError, MissingDependencyError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# model_type -> (transformers class name, default mean, default std). A two-tower "clip"
# checkpoint loads just its vision tower; the text tower's weights are skipped.
_TOWERS = {
    "clip": ("CLIPVisionModel", CLIP_MEAN, CLIP_STD),
    "clip_vision_model": ("CLIPVisionModel", CLIP_MEAN, CLIP_STD),
}
# Known not to fit (see module docstring); refused with a clear message instead of misbehaving.
_SIGLIP = "SigLIP has no CLS token and its pooling head does not export with dynamic sizes"
_SWIN = "Swin has no CLS token (token 0 is a patch)"
_REFUSED = {
    "siglip": _SIGLIP,
    "siglip_vision_model": _SIGLIP,
    "swin": _SWIN,
    "swinv2": _SWIN,
    "vit_mae": "ViT-MAE masks a random 75% of the patches in its forward pass",
}
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth")


class _VisionEncoder(nn.Module):
    """A transformers vision encoder -> one vector per image ``(N, C)``: its ``pooler_output``
    (CLIP's post-layernorm CLS token) when ``pooled``, else the CLS token of
    ``last_hidden_state`` (ViT-like encoders such as DINOv2)."""

    def __init__(self, model: nn.Module, pooled: bool):
        super().__init__()
        self.model = model
        self.pooled = pooled
        self._interp = _accepts(model, "interpolate_pos_encoding")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kw = {"interpolate_pos_encoding": True} if self._interp else {}
        out = self.model(pixel_values=x, **kw)
        return out.pooler_output if self.pooled else out.last_hidden_state[:, 0]


def _accepts(model: nn.Module, arg: str) -> bool:
    return arg in inspect.signature(model.forward).parameters


def _resolve(name_or_path: str) -> Path:
    """A local directory as given, or the cached snapshot of a hub repo id (no network)."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    hint = (
        f"download it on a machine with internet (`hf download {name_or_path}`, or with an "
        f"older huggingface_hub `huggingface-cli download {name_or_path}`, then copy the hub "
        "cache) or pass the path of a local model directory"
    )
    try:
        return Path(snapshot_download(name_or_path, local_files_only=True))
    except HFValidationError:
        raise BackboneError(
            f"{name_or_path!r} is neither a directory nor a valid Hugging Face repo id"
        ) from None
    except (OSError, ValueError) as e:  # LocalEntryNotFoundError is an OSError
        raise BackboneError(
            f"Hugging Face model {name_or_path!r} is not a directory and is not in the local "
            f"hub cache (offline only: nothing is downloaded); {hint}"
        ) from e


def _safetensors_files(d: Path) -> list[Path]:
    index = d / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [d / s for s in shards]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise BackboneError(f"{d}: shards listed in {index.name} are missing: {missing}")
        return files
    if (d / "model.safetensors").is_file():
        return [d / "model.safetensors"]
    pickles = [n for n in _PICKLE_WEIGHTS if (d / n).exists()]
    if pickles:
        raise BackboneError(
            f"{d} holds only pickled weights ({', '.join(pickles)}); they are never loaded "
            "(unpickling can run arbitrary code). Use a checkpoint with model.safetensors, or "
            "convert it on a trusted machine: Model.from_pretrained(dir).save_pretrained(out, "
            "safe_serialization=True)"
        )
    raise BackboneError(f"{d}: no model.safetensors (or model.safetensors.index.json) found")


def _weights_hash(files: list[Path]) -> str:
    if len(files) == 1:
        return file_sha256(files[0])
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{file_sha256(f)}\n".encode())
    return h.hexdigest()


def _normalisation(d: Path) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``image_mean``/``image_std`` from the checkpoint's image processor config, if any."""
    sources = (("preprocessor_config.json", None), ("processor_config.json", "image_processor"))
    for fname, key in sources:
        f = d / fname
        if not f.is_file():
            continue
        try:
            cfg = json.loads(f.read_text())
            if key:
                cfg = cfg.get(key) or {}
            mean, std = cfg.get("image_mean"), cfg.get("image_std")
        except (ValueError, AttributeError):
            continue
        if (
            isinstance(mean, list | tuple)
            and isinstance(std, list | tuple)
            and len(mean) == 3
            and len(std) == 3
        ):
            return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    return None


def _from_pretrained(cls, d: Path) -> nn.Module:
    """``cls.from_pretrained`` offline, safetensors only, float32, quietly; but strict about
    weights the forward pass uses: only an unused ``pooler.*`` may be missing (a two-tower
    checkpoint's text weights are merely unexpected)."""
    from transformers.utils import logging as tlog

    verbosity, bars = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        model, info = cls.from_pretrained(
            d,
            local_files_only=True,
            use_safetensors=True,
            dtype=torch.float32,
            output_loading_info=True,
        )
    except ValueError as e:  # e.g. AutoModel has no class for this model type
        raise BackboneError(f"{d}: cannot load the model ({e})") from e
    finally:
        tlog.set_verbosity(verbosity)
        if bars:
            tlog.enable_progress_bar()
    missing = [k for k in info.get("missing_keys", []) if not k.startswith("pooler.")]
    if missing:
        shown = ", ".join(sorted(missing)[:5]) + (", ..." if len(missing) > 5 else "")
        raise BackboneError(f"{d}: checkpoint lacks {len(missing)} weights of the model ({shown})")
    return model


@register_scheme("hf")
def load_hf_backbone(name_or_path: str) -> Backbone:
    """Load a transformers vision model (local dir or cached repo id) as a vector backbone."""
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError(
            "hf:<model> backbones need the transformers package: pip install 'landmark-finder[hf]'"
        ) from None

    d = _resolve(name_or_path)
    if not (d / "config.json").is_file():
        raise BackboneError(f"{d}: no config.json; not a transformers model directory")
    files = _safetensors_files(d)
    try:
        config = transformers.AutoConfig.from_pretrained(d, local_files_only=True)
    except (ValueError, KeyError, OSError) as e:
        raise BackboneError(f"{d}: cannot read the model config ({e})") from e
    model_type = getattr(config, "model_type", "")
    if model_type in _REFUSED:
        raise BackboneError(
            f"{d}: model type {model_type!r} is not supported: {_REFUSED[model_type]}"
        )
    if model_type not in _TOWERS and not (
        hasattr(config, "hidden_size") and hasattr(config, "patch_size")
    ):
        raise BackboneError(
            f"{d}: model type {model_type!r} is not a ViT-like vision encoder (needs "
            "hidden_size and patch_size); supported: CLIP, DINOv2 and ViT-like models"
        )

    if model_type in _TOWERS:
        cls_name, mean, std = _TOWERS[model_type]
        model = _from_pretrained(getattr(transformers, cls_name), d)
        module = _VisionEncoder(model, pooled=True)
    else:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        model = _from_pretrained(transformers.AutoModel, d)
        module = _VisionEncoder(model, pooled=False)

    vcfg = model.config
    patch = vcfg.patch_size
    patch = int(patch[0] if isinstance(patch, list | tuple) else patch)
    mean, std = _normalisation(d) or (mean, std)
    model.eval()
    return Backbone(
        name=f"hf:{name_or_path}",
        module=module.eval(),
        dim=int(vcfg.hidden_size),
        mean=mean,
        std=std,
        output="vector",
        weights_hash=_weights_hash(files),
        size_multiple=patch,
    )

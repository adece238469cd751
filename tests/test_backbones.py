"""Backbones: the MobileNetV2 port (strict weights, plausible ImageNet classes on a real photo),
the registry, and offline Hugging Face loading (tiny random models built in tmp dirs)."""

from __future__ import annotations

import json
import re
import shutil
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import need_shared
from landmark_finder import backbones
from landmark_finder.backbones.base import IMAGENET_MEAN, IMAGENET_STD

HEX64 = re.compile(r"[0-9a-f]{64}")

# ImageNet classes a photo of the Taj Mahal plausibly gets.
MONUMENT_CLASSES = {
    698: "palace",
    668: "mosque",
    538: "dome",
    832: "stupa",
    663: "monastery",
    483: "castle",
    873: "triumphal arch",
    497: "church",
    442: "bell cote",
}
# Front views, checked to be classified mosque/palace/dome with high confidence.
TAJ_PHOTOS = ["58952c36fefa.jpg", "45b97db5a13b.jpg"]


# --- MobileNetV2 ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mobilenet():
    from landmark_finder.backbones.mobilenet import mobilenet_v2_imagenet

    return mobilenet_v2_imagenet()


def test_mobilenet_state_dict_matches_torchvision_exactly(mobilenet):
    from landmark_finder.backbones.mobilenet import weights_path

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    assert list(mobilenet.state_dict()) == list(state)  # same names, same order
    assert {k: tuple(v.shape) for k, v in mobilenet.state_dict().items()} == {
        k: tuple(v.shape) for k, v in state.items()
    }
    # torchvision documents 3,504,872 parameters for mobilenet_v2.
    assert sum(p.numel() for p in mobilenet.parameters()) == 3_504_872


@pytest.mark.parametrize("photo", TAJ_PHOTOS)
def test_mobilenet_classifies_taj_mahal_plausibly(mobilenet, photo):
    path = need_shared() / "gallery" / "taj_mahal" / photo
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    img = Image.open(path).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.array(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        probs = mobilenet(x).softmax(1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] in MONUMENT_CLASSES, top5
    assert len(set(top5) & MONUMENT_CLASSES.keys()) >= 3, top5
    assert probs[top5[0]] > 0.5


def test_registry_mobilenet_v2_feature_map():
    from landmark_finder.backbones.mobilenet import weights_path

    bb = backbones.load("mobilenet-v2")
    assert bb.name == "mobilenet-v2" and bb.dim == 1280 and bb.output == "map"
    assert bb.mean == IMAGENET_MEAN and bb.std == IMAGENET_STD
    assert bb.weights_hash == backbones.file_sha256(weights_path())
    assert not bb.module.training
    with torch.no_grad():
        square = bb.module(torch.randn(1, 3, 224, 224))
        wide = bb.module(torch.randn(1, 3, 200, 300))
    assert square.shape == (1, 1280, 7, 7)
    assert wide.shape == (1, 1280, 7, 10)
    assert square.min() >= 0 and square.max() <= 6  # ends with ReLU6


def test_registry_efficientnet_lite0_feature_map():
    bb = backbones.load("efficientnet-lite0")
    assert bb.dim == 1280 and bb.output == "map" and HEX64.fullmatch(bb.weights_hash)
    with torch.no_grad():
        y = bb.module(torch.randn(1, 3, 224, 224))
    assert y.shape[:2] == (1, 1280) and y.ndim == 4


def test_unknown_backbone_lists_choices():
    with pytest.raises(ValueError) as e:
        backbones.load("resnet-9000")
    msg = str(e.value)
    for name in ("mobilenet-v2", "efficientnet-lite0", "efficientnet-lite2", "hf:"):
        assert name in msg


# --- Hugging Face ---------------------------------------------------------------------------

try:  # an optional dependency (extra "hf"): without it only these tests are skipped
    import transformers
except ImportError:
    transformers = None

needs_hf = pytest.mark.skipif(transformers is None, reason="transformers is not installed")

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    patch_size=8,
    image_size=64,
)


def _tiny(kind: str):
    torch.manual_seed(0)
    if kind == "dinov2":
        return transformers.Dinov2Model(transformers.Dinov2Config(**TINY))
    if kind == "clip_vision":
        return transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**TINY))
    if kind == "clip":
        text = dict(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
        )
        cfg = transformers.CLIPConfig(vision_config=TINY, text_config=text, projection_dim=16)
        return transformers.CLIPModel(cfg)
    if kind == "siglip_vision":
        return transformers.SiglipVisionModel(transformers.SiglipVisionConfig(**TINY))
    raise AssertionError(kind)


def _reference(model, x: torch.Tensor) -> torch.Tensor:
    """What the wrapper should return, computed from the in-memory model."""
    if isinstance(model, transformers.CLIPModel):
        return model.vision_model(pixel_values=x, interpolate_pos_encoding=True).pooler_output
    if isinstance(model, transformers.CLIPVisionModel):
        return model(pixel_values=x, interpolate_pos_encoding=True).pooler_output
    return model(pixel_values=x).last_hidden_state[:, 0]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for kind in ("dinov2", "clip_vision", "clip"):
        model = _tiny(kind).eval()
        model.save_pretrained(root / kind, safe_serialization=True)
        out[kind] = (root / kind, model)
    return out


@needs_hf
@pytest.mark.parametrize("kind", ["dinov2", "clip_vision", "clip"])
def test_hf_backbone_loads_and_runs_at_several_sizes(tiny_models, kind):
    path, model = tiny_models[kind]
    bb = backbones.load(f"hf:{path}")
    assert bb.name == f"hf:{path}"
    assert bb.output == "vector" and bb.dim == 32 and bb.size_multiple == 8
    assert bb.weights_hash == backbones.file_sha256(path / "model.safetensors")
    assert HEX64.fullmatch(bb.weights_hash)
    if kind == "dinov2":
        assert bb.mean == IMAGENET_MEAN and bb.std == IMAGENET_STD
    else:
        assert bb.mean == pytest.approx((0.4815, 0.4578, 0.4082), abs=1e-4)
        assert bb.std == pytest.approx((0.2686, 0.2613, 0.2758), abs=1e-4)
    for h, w in [(64, 64), (96, 64), (64, 128)]:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            y = bb.module(x)
            ref = _reference(model, x)
        assert y.shape == (1, 32) and torch.isfinite(y).all()
        torch.testing.assert_close(y, ref)  # the saved weights, not a fresh init


@needs_hf
@pytest.mark.parametrize("kind", ["dinov2", "clip"])
def test_hf_backbone_onnx_export_keeps_dynamic_sizes(tiny_models, kind):
    """The extractor exports once at 224x224: the graph must still interpolate positions."""
    from landmark_finder.core.descriptors import Extractor, Preprocessing

    path, _ = tiny_models[kind]
    pre = Preprocessing(size=96)
    onnx = Extractor.create(f"hf:{path}", pre, runtime="onnx")
    eager = Extractor.create(f"hf:{path}", pre, runtime="torch")
    assert onnx.runtime == "onnx"
    rng = np.random.default_rng(0)
    for size in [(96, 64), (64, 96), (120, 120)]:
        img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        a, b = onnx.describe(img), eager.describe(img)
        assert a.shape == (32,)
        np.testing.assert_allclose(a, b, atol=1e-4)


@needs_hf
def test_hf_mean_std_from_preprocessor_config(tiny_models, tmp_path):
    src, _ = tiny_models["dinov2"]
    d = tmp_path / "dino"
    shutil.copytree(src, d)
    (d / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3]})
    )
    bb = backbones.load(f"hf:{d}")
    assert bb.mean == (0.5, 0.4, 0.3) and bb.std == (0.2, 0.25, 0.3)


@needs_hf
def test_hf_refuses_pickle_only_checkpoint(tiny_models, tmp_path):
    src, _ = tiny_models["dinov2"]
    d = tmp_path / "pickled"
    d.mkdir()
    shutil.copy(src / "config.json", d / "config.json")
    (d / "pytorch_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(ValueError, match="pickle"):
        backbones.load(f"hf:{d}")


@needs_hf
def test_hf_refuses_siglip(tmp_path):
    _tiny("siglip_vision").save_pretrained(tmp_path / "siglip", safe_serialization=True)
    with pytest.raises(ValueError, match="SigLIP"):
        backbones.load(f"hf:{tmp_path / 'siglip'}")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@needs_hf
def test_hf_repo_id_missing_from_cache_is_a_clear_error(no_network, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ValueError, match="huggingface-cli download landmark-finder-test/nope"):
        backbones.load("hf:landmark-finder-test/nope")


@needs_hf
def test_hf_repo_id_resolved_from_local_cache(no_network, monkeypatch, tmp_path, tiny_models):
    """A repo id found in the hub cache layout (models--org--name/snapshots/<rev>) loads."""
    from huggingface_hub import constants

    src, _ = tiny_models["dinov2"]
    repo = tmp_path / "hub" / "models--landmark-finder-test--tiny-dino"
    rev = "0" * 40
    shutil.copytree(src, repo / "snapshots" / rev)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    bb = backbones.load("hf:landmark-finder-test/tiny-dino")
    assert bb.name == "hf:landmark-finder-test/tiny-dino"
    assert bb.weights_hash == backbones.file_sha256(src / "model.safetensors")
    with torch.no_grad():
        assert bb.module(torch.randn(1, 3, 64, 64)).shape == (1, 32)


@needs_hf
def test_a_global_vector_backbone_still_places_landmarks(tiny_models, tmp_path):
    """A backbone without a feature map (a ViT's CLS token) has no regions or evidence: every
    landmark is still placed, by its seed boxes' crops refined, never by an error."""
    from conftest import INDIAN, link_gallery, need_shared
    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.core.descriptors import Preprocessing
    from landmark_finder.core.images import load_image
    from landmark_finder.explain.landmarks import find_landmarks
    from landmark_finder.explain.locate import DenseFallback
    from landmark_finder.recognition.indexing import IndexConfig, build_index
    from landmark_finder.recognition.recognizer import Recognizer

    need_shared()
    path, _ = tiny_models["dinov2"]
    gallery = link_gallery(tmp_path, ["charminar", "taj_mahal", "india_gate"], 3)
    cfg = IndexConfig(f"hf:{path}", Preprocessing(size=64))
    build_index(gallery, tmp_path / "index", load_catalog(INDIAN / "catalog.csv"), cfg)
    rec = Recognizer.open(tmp_path / "index")
    img = load_image(sorted((gallery / "taj_mahal").glob("*.jpg"))[0], 512)
    seed = (10, 10, img.width // 2, img.height // 2)
    (x0, y0, x1, y1), score = DenseFallback(rec).box(img, "taj_mahal", [seed])
    assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height and -1 <= score <= 1
    find_landmarks(rec, img, dense=DenseFallback(rec))  # whatever it finds, it does not raise

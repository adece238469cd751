"""Built-in non-landmark pictures: "unknown" examples every gallery's calibration can learn from.

The calibrator learns "unknown" from the gallery itself (photos queried with their own landmark
removed). A small gallery has too little of that: a 5-landmark index called blank, noise and
everyday photos landmarks with confidence up to 0.98. So every index also calibrates against a
fixed set of pictures that show no landmark, all of which can ship with the package or be drawn
on the spot:

* **Drawn**: flat colours, linear and radial gradients, pixel noise, smooth random fields
  (cloud- and blotch-like), stripes, checkerboards, random shapes; seeded, so always identical.
* **Photos that ship inside installed dependencies**, each also cropped, mirrored, greyed and
  darkened: scikit-learn's ``china.jpg`` and ``flower.jpg`` (CC BY 2.0, Flickr users
  danielbuechele and vultilion), Matplotlib's ``grace_hopper.jpg`` (US Navy photo, public
  domain), PyWavelets' ``ascent`` (public domain) and ``camera`` (CC0, Lav Varshney).

Their descriptors ship for the default backbones (``data/negatives/<key>.npy``, float16, no
pickle; ``<key>.json`` names backbone, weights sha256 and preprocessing). Any other backbone,
weights or preprocessing gets them computed from the same pictures once (a few seconds) and
cached beside the exported ONNX graphs.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from landmark_finder.core.atomic import write_bytes_atomic, write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    from landmark_finder.core.descriptors import Extractor

log = logging.getLogger(__name__)

#: Bump when the pictures change: shipped and cached descriptors of another version are ignored.
VERSION = 1
SHIPPED = Path(__file__).with_name("data") / "negatives"
_SIZE = (480, 360)


def _drawn(rng: np.random.Generator) -> Iterator[tuple[str, np.ndarray]]:
    w, h = _SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    flats = [(0, 0, 0), (255, 255, 255), (128, 128, 128), (200, 30, 30), (30, 160, 60)]
    flats += [(40, 70, 200), (135, 206, 235), (230, 215, 180), (60, 50, 45)]
    for c in flats:
        yield f"flat{c}", np.broadcast_to(np.array(c, np.float32), (h, w, 3))
    for i in range(8):  # linear gradients between two random colours, any direction
        a, b = rng.uniform(0, 255, (2, 3))
        ang = rng.uniform(0, np.pi)
        t = (np.cos(ang) * xx / w + np.sin(ang) * yy / h) / (abs(np.cos(ang)) + abs(np.sin(ang)))
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
        yield f"gradient{i}", a + (b - a) * t[..., None]
    for i in range(4):  # radial gradients (vignettes, a sun in a plain sky)
        a, b = rng.uniform(0, 255, (2, 3))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.clip(np.hypot(xx - cx, yy - cy) / (0.8 * w), 0, 1)
        yield f"radial{i}", a + (b - a) * t[..., None]
    for i in range(6):  # pixel noise: uniform, Gaussian around a colour, grey
        if i % 3 == 0:
            yield f"noise{i}", rng.uniform(0, 255, (h, w, 3))
        elif i % 3 == 1:
            yield f"noise{i}", rng.uniform(30, 220, 3) + rng.normal(0, 40, (h, w, 3))
        else:
            yield f"noise{i}", np.repeat(rng.uniform(0, 255, (h, w, 1)), 3, axis=2)
    for i, cells in enumerate((3, 5, 8, 12, 20, 32, 48, 64, 4, 10)):  # smooth random fields
        small = rng.uniform(0, 255, (cells, max(2, cells * w // h), 3)).astype(np.uint8)
        big = np.asarray(Image.fromarray(small).resize(_SIZE, Image.BICUBIC), np.float32)
        if i % 2:  # tinted, lower contrast: overcast sky, water, a wall
            big = rng.uniform(60, 200, 3) + (big - 128) * rng.uniform(0.2, 0.6)
        yield f"field{cells}", big
    for i, period in enumerate((8, 24, 60)):
        a, b = rng.uniform(0, 255, (2, 3))
        stripes = ((xx + yy * (i - 1)) // period % 2)[..., None]
        yield f"stripes{period}", a + (b - a) * stripes
        checker = ((xx // period + yy // period) % 2)[..., None]
        yield f"checker{period}", a + (b - a) * checker
    for i in range(8):  # random rectangles and ellipses on a flat or graded background
        im = Image.new("RGB", _SIZE, tuple(int(v) for v in rng.integers(0, 256, 3)))
        d = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(2, 12))):
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            box = (x0, y0, x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2)))
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=fill)
        yield f"shapes{i}", np.asarray(im, np.float32)


def _packaged_photos() -> Iterator[tuple[str, Image.Image]]:
    """Photos shipped inside installed dependencies (see the module docstring for licences)."""
    import importlib.resources as res

    for pkg, name in (
        ("sklearn.datasets", "images/china.jpg"),
        ("sklearn.datasets", "images/flower.jpg"),
        ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ):
        try:
            data = res.files(pkg).joinpath(name).read_bytes()
        except (ModuleNotFoundError, FileNotFoundError, OSError) as e:
            log.warning("built-in negative %s/%s unavailable: %s", pkg, name, e)
            continue
        with Image.open(io.BytesIO(data)) as im:
            yield Path(name).stem, im.convert("RGB")
    for name in ("ascent", "camera"):
        try:
            with res.as_file(res.files("pywt.data").joinpath(f"{name}.npz")) as p:
                with np.load(p, allow_pickle=False) as z:
                    yield name, Image.fromarray(np.asarray(z["data"], np.uint8)).convert("RGB")
        except (ModuleNotFoundError, FileNotFoundError, OSError, KeyError) as e:
            log.warning("built-in negative pywt %s unavailable: %s", name, e)


def _variants(im: Image.Image) -> Iterator[tuple[str, Image.Image]]:
    """The photo, four corner crops and a centre crop, mirrored, greyed and darkened."""
    w, h = im.size
    cw, ch = int(w * 0.6), int(h * 0.6)
    yield "", im
    for i, (x, y) in enumerate(((0, 0), (w - cw, 0), (0, h - ch), (w - cw, h - ch))):
        yield f"-crop{i}", im.crop((x, y, x + cw, y + ch))
    yield "-centre", im.crop((w // 4, h // 4, w // 4 + w // 2, h // 4 + h // 2))
    yield "-mirror", ImageOps.mirror(im)
    yield "-grey", ImageOps.grayscale(im).convert("RGB")
    yield "-dark", Image.eval(im, lambda v: v // 3)


def negative_images() -> Iterator[tuple[str, Image.Image]]:
    """Every built-in negative picture, in a fixed order, as (name, RGB image)."""
    rng = np.random.default_rng(20240514)
    for name, arr in _drawn(rng):
        yield name, Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    for name, photo in _packaged_photos():
        for suffix, im in _variants(photo):
            yield name + suffix, im


def _key(extractor: Extractor) -> tuple[str, dict]:
    meta = {
        "version": VERSION,
        "backbone": extractor.backbone_name,
        "weights_hash": extractor.weights_hash,
        # whole-picture descriptors: the index's crop views (``views``) do not change them
        "preprocessing": {
            k: v for k, v in extractor.preprocessing.to_dict().items() if k != "views"
        },
    }
    meta = json.loads(json.dumps(meta))  # as read back from JSON: tuples become lists
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    return f"{extractor.backbone_name.replace(':', '_').replace('/', '_')}-{digest}", meta


def compute(extractor: Extractor) -> np.ndarray:
    """Descriptors of every built-in negative picture with ``extractor`` (float32, unit rows)."""
    vecs = [extractor.describe(im) for _, im in negative_images()]
    return np.stack(vecs).astype(np.float32)


def _read(npy: Path, meta: dict) -> np.ndarray | None:
    try:
        stored = json.loads(npy.with_suffix(".json").read_text("utf-8"))
        if stored.get("key") != meta:
            return None
        arr = np.load(npy, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError):
        return None
    return arr if arr.ndim == 2 else None


def write(arr: np.ndarray, folder: Path, extractor: Extractor) -> Path:
    """Store descriptors for ``extractor`` in ``folder`` (how the shipped files are made)."""
    name, meta = _key(extractor)
    buf = io.BytesIO()
    np.save(buf, arr.astype(np.float16), allow_pickle=False)
    write_bytes_atomic(folder / f"{name}.npy", buf.getvalue())
    info = {"key": meta, "count": int(len(arr)), "names": [n for n, _ in negative_images()]}
    write_text_atomic(folder / f"{name}.json", json.dumps(info, indent=1) + "\n")
    return folder / f"{name}.npy"


def builtin_negatives(extractor: Extractor) -> np.ndarray:
    """The built-in negatives' descriptors for this extractor: shipped, cached, or computed now
    (and cached) for a backbone, weights or preprocessing that has none shipped."""
    from landmark_finder.core.descriptors import cache_dir

    name, meta = _key(extractor)
    for folder in (SHIPPED, cache_dir() / "negatives"):
        arr = _read(folder / f"{name}.npy", meta)
        if arr is not None and arr.shape[1] == extractor.dim:
            return arr
    arr = compute(extractor)
    try:
        write(arr, cache_dir() / "negatives", extractor)
    except OSError as e:  # a read-only cache costs a few seconds per build, nothing else
        log.warning("could not cache built-in negatives: %s", e)
    return arr


def main(argv: list[str] | None = None) -> None:
    """Regenerate the shipped files: ``python -m landmark_finder.recognition.negatives
    efficientnet-lite2:352 efficientnet-lite0:224`` (backbone:size, default preprocessing)."""
    import sys

    from landmark_finder.core.descriptors import Extractor, Preprocessing

    for spec in (sys.argv[1:] if argv is None else argv) or ["efficientnet-lite2:352"]:
        backbone, _, size = spec.rpartition(":") if ":" in spec else (spec, "", "352")
        ex = Extractor.create(backbone, Preprocessing(size=int(size)))
        print(write(compute(ex), SHIPPED, ex))


if __name__ == "__main__":  # pragma: no cover
    main()

"""Training data: a folder-per-landmark collection, augmentation, a leak-free validation split
and a class-balanced sampler.

Photos are read only through :func:`landmark_finder.core.images.load_image`, so training sees them
exactly as indexing and recognition do. Augmentation is plain Pillow/numpy (random resized
crop, mirror, colour jitter): it imitates what separates a query from the reference photos of
the same landmark — another framing, zoom, light and camera — and nothing more.

The validation split is grouped by near-duplicates: a photo and its resized or recompressed
copy on both sides would make the validation score measure memory. When the dataset tools
(:mod:`landmark_finder.dataset`) are installed their duplicate finder is used; otherwise a
small difference hash of our own groups the resized/recompressed copies.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from landmark_finder.core.gallery import scan_gallery
from landmark_finder.core.images import ImageLoadError, content_hash, load_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledPhoto:
    path: Path
    landmark: str
    label: int
    sha256: str


@dataclass
class Collection:
    """The readable photos of a collection, labelled ``0..n_classes-1`` in sorted id order."""

    photos: list[LabelledPhoto]
    classes: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        return np.array([p.label for p in self.photos], np.int64)

    def subset(self, idx: Sequence[int]) -> Collection:
        return Collection([self.photos[i] for i in idx], self.classes, list(self.warnings))


def read_collection(
    root: Path, landmarks: Sequence[str] | None = None, min_photos: int = 2
) -> Collection:
    """Photos under ``root/<landmark>/``; byte-identical copies are kept once.

    ``landmarks`` restricts training to those folders (e.g. to hold landmarks out for a
    landmark-disjoint test). Landmarks with fewer than ``min_photos`` photos are left out with
    a warning: a margin loss needs at least two views of a class to learn anything about it.
    """
    scan = scan_gallery(Path(root))
    warnings = list(scan.warnings)
    wanted = set(landmarks) if landmarks else None
    if wanted is not None:
        missing = sorted(wanted - set(scan.landmark_ids))
        if missing:
            raise ValueError(f"{root}: no photos of landmark(s) {', '.join(missing)}")
    by_lm: dict[str, list[tuple[Path, str]]] = {}
    seen: set[str] = set()
    for lid, path in scan.photos:
        if wanted is not None and lid not in wanted:
            continue
        try:
            sha = content_hash(path)
        except ImageLoadError as e:
            warnings.append(str(e))
            continue
        if sha in seen:
            warnings.append(f"{path}: identical to another photo of the collection; used once")
            continue
        seen.add(sha)
        by_lm.setdefault(lid, []).append((path, sha))
    classes = []
    for lid in sorted(by_lm):
        if len(by_lm[lid]) < min_photos:
            warnings.append(f"{lid}: only {len(by_lm[lid])} photo(s); left out of training")
        else:
            classes.append(lid)
    if len(classes) < 2:
        raise ValueError(
            f"{root}: training needs at least 2 landmarks with {min_photos}+ photos "
            f"each; found {len(classes)}"
        )
    photos = [
        LabelledPhoto(p, lid, k, sha) for k, lid in enumerate(classes) for p, sha in by_lm[lid]
    ]
    return Collection(photos, classes, warnings)


# --- augmentation --------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the random view; the defaults keep the landmark recognisable."""

    min_area: float = 0.35  # random resized crop: share of the photo's area kept
    max_area: float = 1.0
    min_ratio: float = 3 / 4  # aspect-ratio change of the crop relative to the photo
    max_ratio: float = 4 / 3
    flip: float = 0.5  # probability of mirroring
    brightness: float = 0.3  # jitter factors drawn from [1-x, 1+x]
    contrast: float = 0.3
    saturation: float = 0.3

    def key(self) -> str:
        return ",".join(
            f"{v:g}"
            for v in (
                self.min_area,
                self.max_area,
                self.min_ratio,
                self.max_ratio,
                self.flip,
                self.brightness,
                self.contrast,
                self.saturation,
            )
        )


def random_resized_crop(
    img: Image.Image,
    rng: np.random.Generator,
    min_area: float = 0.35,
    max_area: float = 1.0,
    min_ratio: float = 3 / 4,
    max_ratio: float = 4 / 3,
) -> Image.Image:
    """A random window covering ``min_area..max_area`` of the photo, aspect jittered."""
    w, h = img.size
    for _ in range(10):
        area = rng.uniform(min_area, max_area) * w * h
        r = np.exp(rng.uniform(np.log(min_ratio), np.log(max_ratio))) * (w / h)
        cw, ch = int(round(np.sqrt(area * r))), int(round(np.sqrt(area / r)))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return img.crop((x, y, x + cw, y + ch))
    side = int(round(np.sqrt(min(max_area, 1.0)) * min(w, h)))  # fallback: centred crop
    x, y = (w - side) // 2, (h - side) // 2
    return img.crop((x, y, x + side, y + side))


def colour_jitter(
    img: Image.Image,
    rng: np.random.Generator,
    brightness: float = 0.3,
    contrast: float = 0.3,
    saturation: float = 0.3,
) -> Image.Image:
    """Brightness, contrast and saturation changes, applied in a random order."""
    ops = [
        (ImageEnhance.Brightness, brightness),
        (ImageEnhance.Contrast, contrast),
        (ImageEnhance.Color, saturation),
    ]
    for i in rng.permutation(len(ops)):
        enh, x = ops[i]
        if x > 0:
            img = enh(img).enhance(float(rng.uniform(1 - x, 1 + x)))
    return img


def augment(
    img: Image.Image, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()
) -> Image.Image:
    """One random training view of an RGB photo."""
    out = random_resized_crop(img, rng, cfg.min_area, cfg.max_area, cfg.min_ratio, cfg.max_ratio)
    if rng.random() < cfg.flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return colour_jitter(out, rng, cfg.brightness, cfg.contrast, cfg.saturation)


def view_rng(seed: int, sha256: str, view: int) -> np.random.Generator:
    """The generator of one photo's ``view``-th augmentation: the same every run, so cached
    views stay valid and a resumed run sees the same data."""
    h = hashlib.sha256(f"{seed}:{sha256}:{view}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "big"))


# --- validation split ----------------------------------------------------------------------


def _dhash(path: Path, side: int = 8) -> np.ndarray | None:
    try:
        g = (
            load_image(path, max_side=64)
            .convert("L")
            .resize((side + 1, side), Image.Resampling.BILINEAR)
        )
    except ImageLoadError:
        return None
    a = np.asarray(g, np.int16)
    return (a[:, 1:] > a[:, :-1]).ravel()


def _groups_by_dhash(photos: list[LabelledPhoto], radius: int = 6) -> np.ndarray:
    """Group ids linking photos whose 64-bit difference hashes differ in ``<= radius`` bits
    (resized and recompressed copies)."""
    codes = [_dhash(p.path) for p in photos]
    parent = list(range(len(photos)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    ok = [i for i, c in enumerate(codes) if c is not None]
    if ok:
        m = np.stack([codes[i] for i in ok]).astype(np.int16)
        dist = (m[:, None, :] != m[None, :, :]).sum(-1)
        for a, b in zip(*np.nonzero(np.triu(dist <= radius, 1)), strict=False):
            ra, rb = find(ok[a]), find(ok[b])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(len(photos))], np.int64)


def _groups_by_dataset_tools(photos: list[LabelledPhoto]) -> np.ndarray | None:
    """Near-duplicate groups from :mod:`landmark_finder.dataset` (pHash/dHash of crops plus a
    pixel check), or None when those tools are not available."""
    try:
        from landmark_finder.dataset.duplicates import find_duplicates
        from landmark_finder.dataset.scan import Entry, examine_all
    except ImportError:
        return None
    entries = [Entry(p.path, str(p.path), p.landmark, None, "image") for p in photos]
    try:
        examined = examine_all(entries)
        groups = find_duplicates(examined)
    except (TypeError, AttributeError) as e:  # an API that changed under us: use our own hash
        log.warning("dataset duplicate finder unusable (%s); using a difference hash", e)
        return None
    gid = np.arange(len(photos), dtype=np.int64)
    pos = {str(p.path): i for i, p in enumerate(photos)}
    for g in groups:
        idx = [pos[str(m.path)] for m in g.members if str(m.path) in pos]
        for i in idx:
            gid[i] = min(idx)
    return gid


def duplicate_groups(photos: list[LabelledPhoto]) -> np.ndarray:
    """A group id per photo; near-duplicates share one."""
    gid = _groups_by_dataset_tools(photos)
    return gid if gid is not None else _groups_by_dhash(photos)


def split_train_val(
    collection: Collection,
    val_fraction: float = 0.15,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, val): per landmark about ``val_fraction`` of the photos go to
    validation, whole near-duplicate groups at a time, and at least 2 photos stay in training."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"validation fraction must be in [0, 1); got {val_fraction}")
    n = len(collection.photos)
    if val_fraction == 0:
        return np.arange(n), np.zeros(0, np.int64)
    gid = duplicate_groups(collection.photos) if groups is None else np.asarray(groups)
    labels = collection.labels
    val: list[int] = []
    for lab in np.unique(labels):
        rows = np.flatnonzero(labels == lab)
        lid = collection.classes[lab]
        rng = np.random.default_rng(
            int.from_bytes(hashlib.sha256(f"{seed}:{lid}".encode()).digest()[:8], "big")
        )
        by_group: dict[int, list[int]] = {}
        for r in rows:
            by_group.setdefault(int(gid[r]), []).append(int(r))
        order = list(by_group.values())
        order = [order[i] for i in rng.permutation(len(order))]
        target = int(round(val_fraction * len(rows)))
        taken: list[int] = []
        for g in order:
            if len(taken) >= target or len(rows) - len(taken) - len(g) < 2:
                continue
            taken += g
        val += taken
    val_a = np.array(sorted(val), np.int64)
    train_a = np.setdiff1d(np.arange(n), val_a)
    return train_a, val_a


# --- sampling -------------------------------------------------------------------------------


class BalancedSampler:
    """Batches in which every landmark is equally likely, whatever its photo count.

    Classes are dealt from a shuffled deck (so every class appears once before any repeats),
    then a photo of the class is drawn at random: a landmark with 24 photos is seen as often
    as one with 60, which keeps the loss from learning the class frequencies.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, rng: np.random.Generator):
        self.labels = np.asarray(labels)
        self.batch_size = int(batch_size)
        self.rng = rng
        self.by_class = [np.flatnonzero(self.labels == c) for c in np.unique(self.labels)]

    def batches(self, n_samples: int) -> list[np.ndarray]:
        """Enough batches to cover ``n_samples`` draws (the last one may be smaller)."""
        k = len(self.by_class)
        decks = int(np.ceil(n_samples / k))
        classes = np.concatenate([self.rng.permutation(k) for _ in range(decks)])[:n_samples]
        picks = np.array(
            [self.by_class[c][self.rng.integers(len(self.by_class[c]))] for c in classes]
        )
        return [picks[i : i + self.batch_size] for i in range(0, len(picks), self.batch_size)]

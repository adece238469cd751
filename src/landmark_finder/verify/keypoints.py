"""Local features: keypoints and their descriptors, for checking a match geometrically.

Global descriptors say "these photos look alike"; local features say "these exact stones are
in both photos, in a consistent arrangement" (see :mod:`landmark_finder.verify.matching`).

* ``sift`` (default): upright root-SIFT. Orientation is fixed to 0 because photos are upright
  after EXIF rotation, and rotation invariance only adds chance matches. Photos are analysed
  at 512 px on the long side; smaller web photos are upsampled to 384 px first, so that SIFT
  finds structure on them at all. Contrast threshold 0.02, half OpenCV's default: landmark
  photos are often hazy and low in contrast. OpenCV's SIFT values are integers 0..255, so
  they are stored losslessly as uint8; the root-SIFT mapping is applied when matching.
* ``orb``: 32-byte binary descriptors, about 4x smaller and faster to match, and less
  discriminative.

Keypoint positions are in pixels of the photo as :func:`load_image` returns it with
``max_side=config.side``, so evidence pictures can draw them on the reference photo.

:class:`LocalStore` keeps the features of many photos in three flat arrays (positions,
descriptors, offsets), saved as ``.npy`` files and memory-mapped when an index is opened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from landmark_finder import defaults
from landmark_finder.registry import Registry

#: Local feature method -> ``factory(config)`` of its OpenCV detector (cv2 imported on use).
DETECTORS: Registry[Callable[[LocalConfig], Any]] = Registry("local feature method")
MIN_SIDE = 384  # photos smaller than this are upsampled before detection
DESCRIPTOR_BYTES = {"sift": 128, "orb": 32}


@dataclass(frozen=True)
class LocalConfig:
    method: str = defaults.LOCAL_FEATURES
    max_keypoints: int = defaults.MAX_KEYPOINTS
    side: int = 512  # long side photos are analysed at

    def __post_init__(self) -> None:
        DETECTORS.check(self.method)
        if self.max_keypoints < 8:
            raise ValueError("max_keypoints must be at least 8")

    @property
    def bytes_per_keypoint(self) -> int:
        return DESCRIPTOR_BYTES[self.method] + 4  # + two float16 coordinates

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LocalConfig:
        return cls(str(d["method"]), int(d["max_keypoints"]), int(d["side"]))


@dataclass
class LocalFeatures:
    """Keypoint positions ``xy`` (n, 2) and descriptors ``desc`` (n, D) uint8 of one photo."""

    xy: np.ndarray
    desc: np.ndarray

    def __len__(self) -> int:
        return len(self.xy)


@DETECTORS.register("sift")
def _sift(config: LocalConfig):
    import cv2

    return cv2.SIFT_create(nfeatures=config.max_keypoints, contrastThreshold=0.02)


@DETECTORS.register("orb")
def _orb(config: LocalConfig):
    import cv2

    return cv2.ORB_create(nfeatures=config.max_keypoints, fastThreshold=10)


#: The accepted method names, in the order help texts list them.
METHODS = DETECTORS.names()


def extract(image: Image.Image, config: LocalConfig = LocalConfig()) -> LocalFeatures:
    """Local features of an upright RGB photo (e.g. from ``load_image``); positions are in
    the given photo's pixels."""
    import cv2

    gray = image.convert("L")
    down = 1.0
    if max(gray.size) > config.side:  # callers normally pass a photo already this size
        down = config.side / max(gray.size)
        gray = gray.resize(
            (max(1, round(gray.width * down)), max(1, round(gray.height * down))),
            Image.Resampling.LANCZOS,
        )
    a = np.asarray(gray)
    up = MIN_SIDE / max(a.shape) if max(a.shape) < MIN_SIDE else 1.0
    if up > 1.0:
        a = cv2.resize(
            a, (round(a.shape[1] * up), round(a.shape[0] * up)), interpolation=cv2.INTER_CUBIC
        )
    det = DETECTORS.get(config.method)(config)
    kps = det.detect(a, None)
    kps = sorted(kps, key=lambda k: -k.response)
    if config.method == "sift":
        # Upright: photos are upright after EXIF rotation. SIFT gives a point one keypoint per
        # dominant orientation; without orientation those are duplicates, which would make
        # every match ambiguous to the ratio test. Keep the strongest of each.
        seen: set[tuple[int, int, int]] = set()
        unique = []
        for kp in kps:
            key = (round(kp.pt[0] * 4), round(kp.pt[1] * 4), round(kp.size * 4))
            if key not in seen:
                seen.add(key)
                kp.angle = 0.0
                unique.append(kp)
        kps = unique
    kps = kps[: config.max_keypoints]
    kps, desc = det.compute(a, kps) if kps else ((), None)
    d = DESCRIPTOR_BYTES[config.method]
    if desc is None or not len(kps):
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, d), np.uint8))
    xy = np.array([k.pt for k in kps], np.float32).reshape(-1, 2) / (up * down)
    return LocalFeatures(xy, np.clip(np.rint(desc), 0, 255).astype(np.uint8))


@dataclass
class LocalStore:
    """Local features of many photos: photo ``i`` owns rows ``offsets[i]:offsets[i+1]``."""

    config: LocalConfig
    xy: np.ndarray  # (N, 2) float16
    desc: np.ndarray  # (N, D) uint8
    offsets: np.ndarray  # (n_photos + 1,) int64

    FILES = ("local_xy.npy", "local_desc.npy", "local_offsets.npy")

    @classmethod
    def empty(cls, config: LocalConfig) -> LocalStore:
        return cls(
            config,
            np.zeros((0, 2), np.float16),
            np.zeros((0, DESCRIPTOR_BYTES[config.method]), np.uint8),
            np.zeros(1, np.int64),
        )

    @classmethod
    def from_features(cls, config: LocalConfig, feats: Sequence[LocalFeatures]) -> LocalStore:
        store = cls.empty(config)
        return store.extend(feats)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> LocalFeatures:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return LocalFeatures(np.asarray(self.xy[a:b], np.float32), np.asarray(self.desc[a:b]))

    def extend(self, feats: Sequence[LocalFeatures]) -> LocalStore:
        if not feats:
            return self
        sizes = np.array([len(f) for f in feats], np.int64)
        return LocalStore(
            self.config,
            np.concatenate([np.asarray(self.xy), *[f.xy.astype(np.float16) for f in feats]]),
            np.concatenate([np.asarray(self.desc), *[f.desc for f in feats]]),
            np.concatenate([self.offsets, self.offsets[-1] + np.cumsum(sizes)]),
        )

    def subset(self, rows: Sequence[int]) -> LocalStore:
        return (
            LocalStore.from_features(self.config, [self[int(i)] for i in rows])
            if len(rows)
            else LocalStore.empty(self.config)
        )

    @property
    def bytes_per_photo(self) -> float:
        return float(self.offsets[-1]) * self.config.bytes_per_keypoint / max(len(self), 1)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(xy, desc, offsets)``: what an index segment stores."""
        return np.asarray(self.xy), np.asarray(self.desc), np.asarray(self.offsets, np.int64)

    def save(self, folder: Path) -> None:
        for name, arr in zip(self.FILES, (self.xy, self.desc, self.offsets), strict=False):
            np.save(folder / name, np.ascontiguousarray(arr))

    @classmethod
    def load(cls, folder: Path, config: LocalConfig) -> LocalStore:
        """Memory-mapped: opening an index does not read every photo's keypoints."""
        xy, desc, offsets = (
            np.load(folder / n, mmap_mode="r", allow_pickle=False) for n in cls.FILES
        )
        return cls.from_arrays(config, xy, desc, offsets)

    @classmethod
    def from_arrays(
        cls, config: LocalConfig, xy: np.ndarray, desc: np.ndarray, offsets: np.ndarray
    ) -> LocalStore:
        """A store over existing (e.g. memory-mapped) arrays, checked for consistency."""
        offsets = np.asarray(offsets, np.int64)
        if (
            xy.ndim != 2
            or xy.shape[1] != 2
            or desc.ndim != 2
            or desc.shape[1] != DESCRIPTOR_BYTES[config.method]
            or len(xy) != len(desc)
            or offsets[-1] != len(xy)
            or np.any(np.diff(offsets) < 0)
        ):
            raise ValueError("local feature arrays are inconsistent")
        return cls(config, xy, desc, offsets)


@dataclass
class LocalView:
    """Local features of many photos kept in several stores (index segments), addressed by
    one row number; nothing is copied, so opening a big index reads no keypoints."""

    config: LocalConfig
    parts: list[LocalStore]
    part: np.ndarray  # (n_photos,) which store holds photo i
    row: np.ndarray  # (n_photos,) its row in that store

    @classmethod
    def of(cls, config: LocalConfig, parts: Sequence[tuple[LocalStore, np.ndarray]]) -> LocalView:
        """``parts``: each store with the rows of it that are in the view, in order."""
        stores = [s for s, _ in parts]
        part = np.concatenate([np.full(len(r), i, np.int32) for i, (_, r) in enumerate(parts)])
        row = np.concatenate([np.asarray(r, np.int64) for _, r in parts])
        return cls(config, stores, part, row)

    def __len__(self) -> int:
        return len(self.row)

    def __getitem__(self, i: int) -> LocalFeatures:
        return self.parts[int(self.part[i])][int(self.row[i])]

    def extend(self, feats: Sequence[LocalFeatures]) -> LocalView:
        if not feats:
            return self
        new = LocalStore.from_features(self.config, feats)
        return LocalView(
            self.config,
            [*self.parts, new],
            np.concatenate([self.part, np.full(len(new), len(self.parts), np.int32)]),
            np.concatenate([self.row, np.arange(len(new), dtype=np.int64)]),
        )

    def subset(self, rows: Sequence[int]) -> LocalView:
        rows = np.asarray(rows, np.int64)
        return LocalView(self.config, self.parts, self.part[rows], self.row[rows])

    def counts(self) -> np.ndarray:
        """Keypoints per photo."""
        sizes = [np.diff(np.asarray(p.offsets)) for p in self.parts]
        return np.array([sizes[p][r] for p, r in zip(self.part, self.row, strict=True)], np.int64)

    @property
    def bytes_per_photo(self) -> float:
        return float(self.counts().sum()) * self.config.bytes_per_keypoint / max(len(self), 1)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return LocalStore.from_features(self.config, [self[i] for i in range(len(self))]).arrays()

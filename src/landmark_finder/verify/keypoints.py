"""Local features: keypoints and their descriptors, for checking a match geometrically.

Global descriptors say "these photos look alike"; local features say "these exact stones are
in both photos, in a consistent arrangement" (see :mod:`landmark_finder.verify.matching`).

* ``sift`` (default): upright root-SIFT. Orientation is fixed to 0 because photos are upright
  after EXIF rotation, and rotation invariance only adds chance matches. Photos are analysed
  at 512 px on the long side; smaller web photos are upsampled to 384 px first, so that SIFT
  finds structure on them at all. Contrast threshold 0.02, half OpenCV's default: landmark
  photos are often hazy and low in contrast. OpenCV's SIFT values are integers 0..255, so
  they are stored losslessly as uint8 (``codes=0``) or product-quantised to 32 bytes
  (:mod:`landmark_finder.verify.codes`, the default for new indexes); the root-SIFT mapping is
  applied when matching.
* ``orb``: 32-byte binary descriptors (the size of compact SIFT codes), faster to match, and
  less discriminative.

Keypoint positions are in pixels of the photo as :func:`load_image` returns it with
``max_side=config.side``, so evidence pictures can draw them on the reference photo.

:class:`LocalStore` keeps the features of many photos in three flat arrays (positions,
descriptors, offsets), saved as ``.npy`` files and memory-mapped when an index is opened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from landmark_finder import defaults
from landmark_finder.registry import Registry
from landmark_finder.verify.codes import MIN_TRAIN, Codebook

#: Local feature method -> ``factory(config)`` of its OpenCV detector (cv2 imported on use).
DETECTORS: Registry[Callable[[LocalConfig], Any]] = Registry("local feature method")
MIN_SIDE = 384  # photos smaller than this are upsampled before detection
DESCRIPTOR_BYTES = {"sift": 128, "orb": 32}


@dataclass(frozen=True)
class LocalConfig:
    method: str = defaults.LOCAL_FEATURES
    max_keypoints: int = defaults.MAX_KEYPOINTS  # stored per gallery photo: its strongest
    side: int = 512  # long side photos are analysed at
    query_keypoints: int = defaults.QUERY_KEYPOINTS  # used per query photo (at least as many)
    #: Bytes a stored SIFT descriptor is compressed to (product quantisation), 0: raw. ORB's
    #: binary descriptors are always stored as they are.
    codes: int = defaults.KEYPOINT_CODE_BYTES

    def __post_init__(self) -> None:
        DETECTORS.check(self.method)
        if min(self.max_keypoints, self.query_keypoints) < 8:
            raise ValueError("max_keypoints and query_keypoints must be at least 8")
        # a query never uses fewer keypoints than a gallery photo stores
        object.__setattr__(self, "query_keypoints", max(self.query_keypoints, self.max_keypoints))
        if self.method != "sift":
            object.__setattr__(self, "codes", 0)
        elif self.codes not in (0, 16, 32, 64):
            raise ValueError("codes must be 0 (raw), 16, 32 or 64 bytes")

    @property
    def detected(self) -> int:
        """Keypoints the detector is asked for: gallery and query photos are detected alike
        and each keeps the strongest it needs, so a reference's keypoints are a query's too."""
        return self.query_keypoints

    @property
    def descriptor_bytes(self) -> int:
        """Bytes of one stored descriptor."""
        return self.codes or DESCRIPTOR_BYTES[self.method]

    @property
    def bytes_per_keypoint(self) -> int:
        return self.descriptor_bytes + 4  # + two float16 coordinates

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LocalConfig:
        # indexes written before the two budgets used the stored number for queries too
        query = int(d.get("query_keypoints", d["max_keypoints"]))
        codes = int(d.get("codes", 0))  # and stored their descriptors raw
        return cls(str(d["method"]), int(d["max_keypoints"]), int(d["side"]), query, codes)


@dataclass
class LocalFeatures:
    """Keypoint positions ``xy`` (n, 2) and descriptors ``desc`` of one photo: (n, D) uint8 as
    detected, or (n, 128) float32 root-SIFT decoded from stored codes."""

    xy: np.ndarray
    desc: np.ndarray

    def __len__(self) -> int:
        return len(self.xy)


@DETECTORS.register("sift")
def _sift(config: LocalConfig):
    import cv2

    return cv2.SIFT_create(nfeatures=config.detected, contrastThreshold=0.02)


@DETECTORS.register("orb")
def _orb(config: LocalConfig):
    import cv2

    return cv2.ORB_create(nfeatures=config.detected, fastThreshold=10)


#: The accepted method names, in the order help texts list them.
METHODS = DETECTORS.names()


def extract(
    image: Image.Image, config: LocalConfig = LocalConfig(), query: bool = False
) -> LocalFeatures:
    """Local features of an upright RGB photo (e.g. from ``load_image``), strongest first:
    ``config.max_keypoints`` of them for a gallery photo, ``config.query_keypoints`` for a
    ``query``. Positions are in the given photo's pixels."""
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
    kps = kps[: config.query_keypoints if query else config.max_keypoints]
    kps, desc = det.compute(a, kps) if kps else ((), None)
    d = DESCRIPTOR_BYTES[config.method]
    if desc is None or not len(kps):
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, d), np.uint8))
    xy = np.array([k.pt for k in kps], np.float32).reshape(-1, 2) / (up * down)
    return LocalFeatures(xy, np.clip(np.rint(desc), 0, 255).astype(np.uint8))


@dataclass
class LocalStore:
    """Local features of many photos: photo ``i`` owns rows ``offsets[i]:offsets[i+1]``.

    With ``config.codes`` the descriptors are stored as codes of ``codebook`` and decoded when
    a photo's features are read; the codebook is learned from the first photos stored."""

    config: LocalConfig
    xy: np.ndarray  # (N, 2) float16
    desc: np.ndarray  # (N, D) uint8: raw descriptors, or codes of ``codebook``
    offsets: np.ndarray  # (n_photos + 1,) int64
    codebook: Codebook | None = None

    FILES = ("local_xy.npy", "local_desc.npy", "local_offsets.npy")
    CODEBOOK_FILE = "local_codebook.npy"

    @classmethod
    def empty(cls, config: LocalConfig, codebook: Codebook | None = None) -> LocalStore:
        return cls(
            config,
            np.zeros((0, 2), np.float16),
            np.zeros((0, config.descriptor_bytes), np.uint8),
            np.zeros(1, np.int64),
            codebook,
        )

    @classmethod
    def from_features(
        cls, config: LocalConfig, feats: Sequence[LocalFeatures], codebook: Codebook | None = None
    ) -> LocalStore:
        """A store of ``feats`` (descriptors as detected). With ``config.codes`` and no
        ``codebook``, one is learned from them; too few descriptors to learn from are stored
        raw (and the store's config says so)."""
        if config.codes and codebook is None:
            raw = [f.desc for f in feats if len(f)]
            n = sum(len(d) for d in raw)
            if n < MIN_TRAIN:
                config = replace(config, codes=0)
            else:
                codebook = Codebook.fit(np.concatenate(raw), config.codes)
        return cls.empty(config, codebook).extend(feats)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> LocalFeatures:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        desc = np.asarray(self.desc[a:b])
        if self.codebook is not None:
            desc = self.codebook.decode(desc)
        return LocalFeatures(np.asarray(self.xy[a:b], np.float32), desc)

    def extend(self, feats: Sequence[LocalFeatures]) -> LocalStore:
        """Append photos' features as detected (encoded here when the store keeps codes)."""
        if not feats:
            return self
        if self.config.codes and self.codebook is None and not len(self):
            return LocalStore.from_features(self.config, feats)
        sizes = np.array([len(f) for f in feats], np.int64)
        desc = [f.desc for f in feats]
        if self.codebook is not None:
            desc = [self.codebook.encode(d) for d in desc]
        return LocalStore(
            self.config,
            np.concatenate([np.asarray(self.xy), *[f.xy.astype(np.float16) for f in feats]]),
            np.concatenate([np.asarray(self.desc), *desc]),
            np.concatenate([self.offsets, self.offsets[-1] + np.cumsum(sizes)]),
            self.codebook,
        )

    def rows(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Photo ``i``'s stored positions and descriptors (codes stay codes)."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return np.asarray(self.xy[a:b]), np.asarray(self.desc[a:b])

    def subset(self, rows: Sequence[int]) -> LocalStore:
        return _stack(self.config, self.codebook, [self.rows(int(i)) for i in rows])

    @property
    def bytes_per_photo(self) -> float:
        return float(self.offsets[-1]) * self.config.bytes_per_keypoint / max(len(self), 1)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(xy, desc, offsets)``: what an index segment stores."""
        return np.asarray(self.xy), np.asarray(self.desc), np.asarray(self.offsets, np.int64)

    def save(self, folder: Path) -> None:
        for name, arr in zip(self.FILES, (self.xy, self.desc, self.offsets), strict=False):
            np.save(folder / name, np.ascontiguousarray(arr))
        if self.codebook is not None:
            np.save(folder / self.CODEBOOK_FILE, self.codebook.centroids)

    @classmethod
    def load(cls, folder: Path, config: LocalConfig) -> LocalStore:
        """Memory-mapped: opening an index does not read every photo's keypoints."""
        xy, desc, offsets = (
            np.load(folder / n, mmap_mode="r", allow_pickle=False) for n in cls.FILES
        )
        codebook = None
        if config.codes:
            codebook = np.load(folder / cls.CODEBOOK_FILE, allow_pickle=False)
        return cls.from_arrays(config, xy, desc, offsets, codebook)

    @classmethod
    def from_arrays(
        cls,
        config: LocalConfig,
        xy: np.ndarray,
        desc: np.ndarray,
        offsets: np.ndarray,
        codebook: Codebook | np.ndarray | None = None,
    ) -> LocalStore:
        """A store over existing (e.g. memory-mapped) arrays, checked for consistency."""
        offsets = np.asarray(offsets, np.int64)
        if codebook is not None and not isinstance(codebook, Codebook):
            codebook = Codebook.from_array(codebook)
        if (
            xy.ndim != 2
            or xy.shape[1] != 2
            or desc.ndim != 2
            or desc.shape[1] != config.descriptor_bytes
            or len(xy) != len(desc)
            or offsets[-1] != len(xy)
            or np.any(np.diff(offsets) < 0)
            or (config.codes and (codebook is None or codebook.code_bytes != config.codes))
        ):
            raise ValueError("local feature arrays are inconsistent")
        return cls(config, xy, desc, offsets, codebook if config.codes else None)


def _stack(
    config: LocalConfig, codebook: Codebook | None, rows: Sequence[tuple[np.ndarray, np.ndarray]]
) -> LocalStore:
    """A store of photos' stored rows (from :meth:`LocalStore.rows`), copied as they are."""
    if not rows:
        return LocalStore.empty(config, codebook)
    sizes = np.array([len(xy) for xy, _ in rows], np.int64)
    return LocalStore(
        config,
        np.concatenate([xy for xy, _ in rows]).astype(np.float16),
        np.concatenate([d for _, d in rows]),
        np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        codebook,
    )


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

    @property
    def codebook(self) -> Codebook | None:
        """The index's codebook: learned with its first segment, shared by every later one."""
        return next((p.codebook for p in self.parts if p.codebook is not None), None)

    def extend(self, feats: Sequence[LocalFeatures]) -> LocalView:
        if not feats:
            return self
        new = LocalStore.from_features(self.config, feats, self.codebook)
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
        """The stored rows of every photo in the view, copied as they are (codes stay codes;
        a segment published with codes of another codebook is re-encoded with the view's)."""
        cb = self.codebook
        foreign = [
            cb is not None and not np.array_equal(p.codebook.centroids, cb.centroids)
            for p in self.parts
        ]
        rows = []
        for p, r in zip(self.part, self.row, strict=True):
            xy, desc = self.parts[int(p)].rows(int(r))
            if foreign[int(p)]:  # decoded root-SIFT, squared: a raw descriptor up to scale
                desc = cb.encode(self.parts[int(p)].codebook.decode(desc) ** 2)
            rows.append((xy, desc))
        return _stack(self.config, cb, rows).arrays()

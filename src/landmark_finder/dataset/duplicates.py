"""Grouping photos that are the same picture: exact copies and near-duplicates.

Exact duplicates share their bytes (sha256). Near-duplicates are found in two steps: perceptual
hash neighbours (``hashing.py``), then — unless the whole-photo hashes are already nearly
identical — the pixel check of ``match.py``. Groups are the connected components of those
links, over the whole collection: duplicates under two landmarks, or in both the ``train`` and
``test`` folders of a raw data set, end up in one group. An augmented variant and its source
are *not* linked here (they are meant to look alike); ``split`` keeps them together by name.

Which copy to keep is fixed and deterministic: most pixels, then biggest file, then path.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from PIL import Image

from landmark_finder.core.images import ImageLoadError, load_image
from landmark_finder.core.progress import Progress, no_progress
from landmark_finder.dataset.hashing import close_pairs
from landmark_finder.dataset.match import compare_photos
from landmark_finder.dataset.scan import HASH_SIDE, Photo
from landmark_finder.i18n import N_


@dataclass
class DuplicateGroup:
    """Photos showing the same picture; ``members[0]`` is the one to keep."""

    id: int
    kind: str  # "exact" (all bytes identical) or "near"
    members: list[Photo]
    evidence: dict[str, str] = field(default_factory=dict)  # rel path -> why it is a duplicate

    @property
    def keep(self) -> Photo:
        return self.members[0]

    @property
    def others(self) -> list[Photo]:
        return self.members[1:]

    @property
    def landmarks(self) -> list[str]:
        return sorted({p.landmark for p in self.members})

    @property
    def cross_landmark(self) -> bool:
        return len(self.landmarks) > 1

    @property
    def cross_split(self) -> bool:
        return len({p.entry.folder_split for p in self.members}) > 1


def keep_order(p: Photo) -> tuple:
    """Sort key: the copy to keep first (largest resolution, then biggest file, then path)."""
    return (-p.pixels, -p.size_bytes, p.entry.rel)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


class _ImageCache:
    """A few decoded thumbnails, since one photo often appears in several candidate pairs."""

    def __init__(self, size: int = 256) -> None:
        self.size, self.items = size, OrderedDict()

    def get(self, photo: Photo) -> Image.Image | None:
        key = photo.entry.path
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        try:
            img = load_image(key, max_side=HASH_SIDE)
        except ImageLoadError:
            img = None  # changed on disk since it was examined
        self.items[key] = img
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return img


def find_duplicates(
    photos: list[Photo], progress: Progress = no_progress, verify: bool = True
) -> list[DuplicateGroup]:
    """Duplicate groups among readable photos (those with perceptual codes), largest first kept.

    ``verify=False`` skips the pixel check and trusts only near-identical whole-photo hashes
    (resized / recompressed copies; crops are then missed).
    """
    photos = [p for p in photos if p.codes is not None]
    # Exact copies first: one representative per distinct content.
    by_sha: dict[str, list[int]] = {}
    for i, p in enumerate(photos):
        by_sha.setdefault(p.sha256, []).append(i)
    uf = _UnionFind(len(photos))
    why: dict[int, str] = {}
    for idx in by_sha.values():
        for k in idx[1:]:
            uf.union(idx[0], k)
            why[k] = why[idx[0]] = "identical bytes"
    reps = [idx[0] for idx in by_sha.values()]
    pairs = close_pairs([photos[r].codes for r in reps])
    cache = _ImageCache()
    progress(0, len(pairs), N_("comparing look-alikes"))
    for n, pair in enumerate(pairs, 1):
        i, j = reps[pair.i], reps[pair.j]
        a, b = photos[i], photos[j]
        if a.entry.family == b.entry.family or uf.find(i) == uf.find(j):
            pass  # an augmented variant and its source, or already linked
        elif pair.certain:
            uf.union(i, j)
            why.setdefault(i, f"resized/recompressed copy (hash distance {pair.whole})")
            why.setdefault(j, f"resized/recompressed copy (hash distance {pair.whole})")
        elif verify:
            ia, ib = cache.get(a), cache.get(b)
            if ia is not None and ib is not None:
                m = compare_photos(ia, ib)
                if m.same:
                    uf.union(i, j)
                    text = (
                        f"cropped or re-encoded copy (pixel residual {m.residual:.2f}, "
                        f"scale {m.scale:.2f})"
                    )
                    why.setdefault(i, text)
                    why.setdefault(j, text)
        progress(n, len(pairs), N_("comparing look-alikes"))
    comps: dict[int, list[int]] = {}
    for i in range(len(photos)):
        comps.setdefault(uf.find(i), []).append(i)
    groups = []
    for members in comps.values():
        if len(members) < 2:
            continue
        ms = sorted((photos[i] for i in members), key=keep_order)
        kind = "exact" if len({p.sha256 for p in ms}) == 1 else "near"
        ev = {photos[i].entry.rel: why.get(i, "") for i in members}
        groups.append(DuplicateGroup(0, kind, ms, ev))
    groups.sort(key=lambda g: g.keep.entry.rel)
    for n, g in enumerate(groups, 1):
        g.id = n
    return groups

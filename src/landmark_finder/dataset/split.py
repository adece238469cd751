"""Train / validation / test split that cannot leak: stratified per landmark, grouped, seeded.

The original project split its folders with ``split-folders``, photo by photo, after filling
small classes with augmented copies — so copies of one photo sat on both sides and the
reported validation accuracy measured memory. Here the unit of the split is a *group*: a photo
together with its augmented variants (by the ``__aug`` name marker) and with every near- or
exact duplicate of it (``duplicates.py``), even one filed under another landmark. Each
landmark's groups are shuffled with a seed derived from ``--seed`` and the landmark id (so
adding a landmark does not reshuffle the others) and dealt to the split furthest below its
target share.

The result is written as ``OUT/<split>/<landmark>/<file>`` hard links (copies when linking is
impossible, e.g. across file systems) plus ``OUT/split_manifest.csv``. It is built in a
temporary folder beside ``OUT`` and renamed into place, so ``OUT`` is complete or absent.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from landmark_finder.core.progress import Progress, no_progress
from landmark_finder.dataset.duplicates import find_duplicates, keep_order
from landmark_finder.dataset.manifest import write_csv_atomic
from landmark_finder.dataset.scan import DEFAULT_MIN_SIDE, Photo, read_tree
from landmark_finder.i18n import N_

SPLIT_NAMES = ("train", "val", "test")
MANIFEST_NAME = "split_manifest.csv"
MANIFEST_FIELDS = (
    "split",
    "landmark",
    "path",
    "source",
    "group",
    "group_size",
    "augmented_from",
    "method",
)


@dataclass
class SplitReport:
    out: Path
    counts: dict[str, dict[str, int]]  # landmark -> split -> photos
    n_groups: int
    n_grouped_photos: int  # photos sharing their group with at least one other photo
    skipped: list[str] = field(default_factory=list)  # unreadable files left out
    linked: int = 0
    copied: int = 0


def _normalise(ratios: tuple[float, ...]) -> tuple[float, float, float]:
    r = list(ratios) + [0.0] * (3 - len(ratios))
    if len(r) != 3 or any(x < 0 for x in r) or sum(r) <= 0:
        raise ValueError(
            "--ratios needs three non-negative numbers (train val test), e.g. 0.7 0.15 0.15"
        )
    if abs(sum(r) - 1) > 0.02 and abs(sum(r) - 100) > 2:
        raise ValueError(f"--ratios must add up to 1 (or 100); got {sum(r):g}")
    s = sum(r)
    return (r[0] / s, r[1] / s, r[2] / s)


def _seed_for(seed: int, landmark: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{landmark}".encode()).digest()[:8], "big")


def assign_groups(
    groups: list[list[Photo]], ratios: tuple[float, float, float], seed: int
) -> dict[int, str]:
    """Split name for each group index: per landmark, shuffled, dealt to the neediest split.

    A group counts for the landmark of its kept photo. Each split's deficit is its target share
    of the landmark's photos minus what it has; the next group goes to the largest deficit
    (ties: train, val, test), so small landmarks still get a test photo before val.
    """
    by_landmark: dict[str, list[int]] = {}
    for gi, g in enumerate(groups):
        by_landmark.setdefault(g[0].landmark, []).append(gi)
    out: dict[int, str] = {}
    for landmark in sorted(by_landmark):
        gis = sorted(by_landmark[landmark], key=lambda gi: groups[gi][0].entry.rel)
        random.Random(_seed_for(seed, landmark)).shuffle(gis)
        total = sum(len(groups[gi]) for gi in gis)
        have = [0, 0, 0]
        order = [0, 2, 1]  # tie-break preference: train, then test, then val
        for gi in gis:
            deficits = [
                ratios[k] * total - have[k] if ratios[k] > 0 else float("-inf") for k in range(3)
            ]
            k = max(order, key=lambda k: (deficits[k], -order.index(k)))
            out[gi] = SPLIT_NAMES[k]
            have[k] += len(groups[gi])
    return out


def _place(src: Path, dest: Path) -> str:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)  # follows symlinks: the link points at the real photo
        return "link"
    except OSError:
        shutil.copy2(src, dest)
        return "copy"


def split_collection(
    root: Path,
    out: Path,
    ratios: tuple[float, ...] = (0.7, 0.15, 0.15),
    seed: int = 0,
    min_side: int = DEFAULT_MIN_SIDE,
    progress: Progress = no_progress,
) -> SplitReport:
    """Split the readable photos of ``root`` into ``out``; ``out`` must not exist or be empty."""
    root, out = Path(os.path.abspath(root)), Path(os.path.abspath(out))
    r = _normalise(tuple(ratios))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: already exists and is not empty; choose a new output folder")
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise ValueError(f"{out}: the output must be outside the collection {root}")
    _, photos = read_tree(root, min_side, progress)
    usable = [p for p in photos if p.status in ("ok", "tiny") and p.entry.kind == "image"]
    skipped = [f"{p.entry.rel}: {p.reason}" for p in photos if p.status == "broken"]
    # Groups: duplicates (over the whole collection) joined with augmentation families.
    parent = {id(p): id(p) for p in usable}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for g in find_duplicates(usable, progress):
        for p in g.others:
            union(id(g.keep), id(p))
    family: dict[tuple[str, str], int] = {}
    for p in usable:
        union(family.setdefault(p.entry.family, id(p)), id(p))
    comps: dict[int, list[Photo]] = {}
    for p in usable:
        comps.setdefault(find(id(p)), []).append(p)
    groups = [
        sorted(ms, key=lambda p: (p.entry.source_stem is not None, keep_order(p)))
        for ms in comps.values()
    ]
    groups.sort(key=lambda g: g[0].entry.rel)
    where = assign_groups(groups, r, seed)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    report = SplitReport(out, {}, len(groups), sum(len(g) for g in groups if len(g) > 1), skipped)
    rows = []
    try:
        n_done, n_total = 0, sum(len(g) for g in groups)
        progress(0, n_total, N_("writing split"))
        for gi, g in enumerate(groups):
            split = where[gi]
            for p in g:
                name = p.path.name
                dest = tmp / split / p.landmark / name
                k = 2
                while dest.exists():  # same file name in train/ and test/ of a raw layout
                    dest = dest.with_name(f"{p.path.stem}~{k}{p.path.suffix}")
                    k += 1
                how = _place(p.path, dest)
                sidecar = p.path.with_name(p.path.name + ".json")
                if sidecar.is_file():
                    _place(sidecar, dest.with_name(dest.name + ".json"))
                report.linked += how == "link"
                report.copied += how == "copy"
                c = report.counts.setdefault(p.landmark, {s: 0 for s in SPLIT_NAMES})
                c[split] += 1
                src_stem = p.entry.source_stem
                rows.append(
                    {
                        "split": split,
                        "landmark": p.landmark,
                        "path": dest.relative_to(tmp).as_posix(),
                        "source": str(p.path),
                        "group": gi + 1,
                        "group_size": len(g),
                        "augmented_from": f"{src_stem}" if src_stem else "",
                        "method": how,
                    }
                )
                n_done += 1
                progress(n_done, n_total, N_("writing split"))
        write_csv_atomic(tmp / MANIFEST_NAME, MANIFEST_FIELDS, rows)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # our own half-built temp folder only
        raise
    return report

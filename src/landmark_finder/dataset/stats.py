"""What is in a photo collection: photos per landmark, sizes, formats, problems, imbalance.

The class balance and the junk were what the original project had to discover by hand before
training; here they are one call (and ``landmark-finder dataset stats``), with a bar chart of
photos per landmark that makes a starved landmark obvious at a glance.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from landmark_finder.dataset.duplicates import DuplicateGroup, find_duplicates
from landmark_finder.dataset.scan import (
    SPLIT_ORDER,
    Photo,
    ScanOptions,
    is_augmented,
    read_collection,
)


@dataclass
class LandmarkCount:
    landmark: str
    photos: int = 0  # readable photos, augmented variants included
    augmented: int = 0
    by_folder: dict[str, int] = field(default_factory=dict)  # split folder ("" if none) -> photos
    augmented_by_folder: dict[str, int] = field(default_factory=dict)
    problems: int = 0  # broken or tiny files


@dataclass
class CollectionStats:
    root: str
    landmarks: list[LandmarkCount]
    formats: dict[str, int]
    width: dict[str, int]  # min / median / max
    height: dict[str, int]
    broken: list[str]  # "rel: reason"
    tiny: list[str]
    junk: list[str]  # hidden / OS files
    not_images: list[str]  # other files inside landmark folders
    loose: list[str]  # photos outside any landmark folder
    exact_duplicate_groups: int = 0
    near_duplicate_groups: int = 0
    duplicate_photos: int = 0  # photos that are a copy of a kept one
    cross_landmark_groups: int = 0
    checked_duplicates: bool = True

    @property
    def n_photos(self) -> int:
        return sum(c.photos for c in self.landmarks)

    @property
    def imbalance(self) -> float:
        """Largest / smallest landmark (1 = perfectly balanced; inf if a landmark is empty)."""
        counts = [c.photos for c in self.landmarks]
        if not counts:
            return 1.0
        return max(counts) / min(counts) if min(counts) else float("inf")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_photos"], d["n_landmarks"] = self.n_photos, len(self.landmarks)
        d["imbalance"] = self.imbalance if self.imbalance != float("inf") else None
        return d


def _summary(values: list[int]) -> dict[str, int]:
    if not values:
        return {"min": 0, "median": 0, "max": 0}
    return {"min": min(values), "median": int(statistics.median(values)), "max": max(values)}


def summarize(
    root: Path, photos: list[Photo], entries, groups: list[DuplicateGroup] | None
) -> CollectionStats:
    """Fold examined photos, scanned entries and duplicate groups into the stats record."""
    counts: dict[str, LandmarkCount] = {}
    for e in entries:
        if e.landmark and e.kind == "image":
            counts.setdefault(e.landmark, LandmarkCount(e.landmark))
    good = [p for p in photos if p.status == "ok" and p.entry.kind == "image"]
    for p in photos:
        if p.entry.kind != "image":
            continue
        c = counts[p.landmark]
        if p.status != "ok":
            c.problems += 1
            continue
        c.photos += 1
        folder = p.entry.folder_split or ""
        c.by_folder[folder] = c.by_folder.get(folder, 0) + 1
        if is_augmented(p.path):
            c.augmented += 1
            c.augmented_by_folder[folder] = c.augmented_by_folder.get(folder, 0) + 1
    checked, groups = groups is not None, groups or []
    return CollectionStats(
        root=str(root),
        landmarks=sorted(counts.values(), key=lambda c: (-c.photos, c.landmark)),
        formats=dict(Counter(p.format for p in good).most_common()),
        width=_summary([p.width for p in good]),
        height=_summary([p.height for p in good]),
        broken=[f"{p.entry.rel}: {p.reason}" for p in photos if p.status == "broken"],
        tiny=[f"{p.entry.rel}: {p.reason}" for p in photos if p.status == "tiny"],
        junk=[e.rel for e in entries if e.kind == "junk"],
        not_images=[e.rel for e in entries if e.kind == "other"],
        loose=[e.rel for e in entries if e.kind == "loose"],
        exact_duplicate_groups=sum(g.kind == "exact" for g in groups),
        near_duplicate_groups=sum(g.kind == "near" for g in groups),
        duplicate_photos=sum(len(g.others) for g in groups),
        cross_landmark_groups=sum(g.cross_landmark for g in groups),
        checked_duplicates=checked,
    )


def collection_stats(root: Path, options: ScanOptions = ScanOptions()) -> CollectionStats:
    """Scan ``root`` and read every photo; ``options.duplicates=False`` skips the (slower)
    duplicate search."""
    root, entries, photos = read_collection(root, options)
    ok = [p for p in photos if p.status == "ok"]
    groups = find_duplicates(ok, options.progress) if options.duplicates else None
    return summarize(root, photos, entries, groups)


def plot_counts(stats: CollectionStats, png: Path, title: str | None = None) -> Path:
    """Horizontal bar chart of photos per landmark (stacked by split folder, augmented hatched)."""
    import matplotlib.ticker
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from landmark_finder.core.figures import save_figure

    rows = list(reversed(stats.landmarks))  # largest at the top
    order = ["", *SPLIT_ORDER]
    folders = sorted(
        {f for c in rows for f in c.by_folder},
        key=lambda f: (order.index(f) if f in order else 99, f),
    )
    n = max(1, len(rows))
    fig = Figure(figsize=(10, min(60, 2.0 + 0.32 * n)), dpi=110)
    ax = fig.subplots()
    y = list(range(len(rows)))
    left = [0] * len(rows)
    colors = colormaps["tab10"]
    for k, folder in enumerate(folders):
        aug = [c.augmented_by_folder.get(folder, 0) for c in rows]
        real = [c.by_folder.get(folder, 0) - a for c, a in zip(rows, aug, strict=False)]
        ax.barh(y, real, left=left, color=colors(k % 10), label=folder or "photos", height=0.7)
        left = [a + b for a, b in zip(left, real, strict=False)]
        if any(aug):  # augmented variants: same colour, hatched, right after the real photos
            ax.barh(
                y,
                aug,
                left=left,
                color=colors(k % 10),
                alpha=0.45,
                hatch="///",
                edgecolor="white",
                linewidth=0,
                label=f"{folder or 'photos'}: augmented",
                height=0.7,
            )
            left = [a + b for a, b in zip(left, aug, strict=False)]
    for yi, c in zip(y, rows, strict=False):
        ax.text(c.photos, yi, f" {c.photos}", va="center", fontsize=8)
    counts = [c.photos for c in rows]
    if counts:
        med = statistics.median(counts)
        ax.axvline(med, color="grey", linestyle="--", linewidth=1, label=f"median {med:g}")
    ax.set_yticks(y, [c.landmark for c in rows], fontsize=9)
    ax.set_xlabel("photos")
    ax.set_ylabel("landmark")
    ax.set_xlim(0, max(counts or [1]) * 1.12)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    imb = stats.imbalance
    ax.set_title(
        title
        or f"Photos per landmark — {Path(stats.root).name}\n"
        f"{stats.n_photos} photos, {len(stats.landmarks)} landmarks, "
        f"largest/smallest {'∞' if imb == float('inf') else f'{imb:.1f}'}×",
        fontsize=11,
    )
    ax.grid(axis="x", alpha=0.3)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="folder", title_fontsize=8
    )
    fig.tight_layout()
    return save_figure(fig, png, dpi=110)

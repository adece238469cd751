"""Reading a gallery folder: one sub-folder per landmark, named by the landmark's catalog id."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from landmark_finder.core.images import iter_image_files


@dataclass
class GalleryScan:
    photos: list[tuple[str, Path]]  # (landmark_id, path)
    warnings: list[str] = field(default_factory=list)

    @property
    def landmark_ids(self) -> list[str]:
        return sorted({lid for lid, _ in self.photos})


def scan_gallery(root: Path) -> GalleryScan:
    """Photos under ``root/<landmark_id>/`` (nested folders allowed); loose files are reported."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: gallery folder not found")
    photos: list[tuple[str, Path]] = []
    warnings: list[str] = []
    special: list[tuple[Path, str]] = []
    for path in iter_image_files(root, skipped=special):
        rel = path.relative_to(root)
        if len(rel.parts) < 2:
            warnings.append(f"{path}: photo not inside a landmark folder; skipped")
            continue
        photos.append((rel.parts[0], path))
    warnings += [f"{p}: {why}; skipped" for p, why in special]
    if not photos:
        warnings.append(f"{root}: no photos found in landmark sub-folders")
    return GalleryScan(photos, warnings)

"""The name marker of augmented variants: ``<source stem>__aug<k>.<ext>``.

Kept in a module of its own, free of heavy imports, so that anything that lists photos
(evaluation, indexing) can recognise variants made by ``dataset augment`` and never count one
as an independent photo.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

AUG_MARKER = "__aug"
_AUG_RE = re.compile(r"^(?P<stem>.+)__aug(?P<k>\d+)$")


def augmented_source_stem(path: str | os.PathLike) -> str | None:
    """``"abc"`` for ``abc__aug3.jpg``; None when the name carries no augmentation marker."""
    m = _AUG_RE.match(Path(path).stem)
    return m.group("stem") if m else None


def is_augmented(path: str | os.PathLike) -> bool:
    """True for files written by ``dataset augment`` (by name: the marker travels with the file)."""
    return augmented_source_stem(path) is not None

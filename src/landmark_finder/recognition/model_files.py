"""The model files an index version names, read the same way for both on-disk formats.

Format 1 keeps them under fixed names in its version folder, format 2 under content-addressed
names its manifest lists; what they hold and how they are checked is the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landmark_finder.core.catalog import load_catalog
from landmark_finder.core.whitening import Whitening
from landmark_finder.errors import LandmarkIndexError
from landmark_finder.recognition import store
from landmark_finder.verify.matching import VerifiedModel

#: The model's files by role; a version may lack any but the catalog.
ROLES = ("catalog", "whitening", "distractors", "views", "negatives")


def read_model(
    root: Path, meta: dict, paths: dict[str, Path | None], n_rows: int, has_local: bool
) -> dict:
    """``Index`` keyword arguments for the settings in ``meta`` and the files in ``paths``
    (role → path, None when absent). Raises ``OSError``/``ValueError`` on unreadable files,
    :class:`LandmarkIndexError` when the views do not match ``n_rows`` descriptors."""
    whitening = None
    if paths.get("whitening"):
        with np.load(paths["whitening"], allow_pickle=False) as z:
            blocks = tuple(int(b) for b in z["blocks"]) if "blocks" in z.files else ()
            whitening = Whitening(z["mean"], z["projection"], blocks)

    def array(role: str) -> np.ndarray | None:
        p = paths.get(role)
        return np.load(p, allow_pickle=False) if p is not None else None

    views = array("views")
    if views is not None:
        if views.ndim != 3 or len(views) != n_rows:
            raise LandmarkIndexError(
                f"{root}: views do not match the descriptors; rebuild the index"
            )
    verified = meta.get("verification") if has_local else None
    return dict(
        **store.settings_from_meta(meta),
        catalog=load_catalog(paths["catalog"]),
        whitening=whitening,
        distractors=array("distractors"),
        views=views,
        negatives=array("negatives"),
        verified=VerifiedModel.from_dict(verified) if verified else None,
    )

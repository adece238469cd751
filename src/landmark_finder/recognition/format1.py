"""Reading format-1 indexes (one complete folder per version, ``v-<stamp>/``), read-only.

They keep answering queries after an update of landmark-finder; ``landmark-finder index
upgrade`` rewrites one as format 2 (segments), which every write needs.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from landmark_finder.core.catalog import load_catalog
from landmark_finder.core.whitening import Whitening
from landmark_finder.errors import IndexVersionError, LandmarkIndexError
from landmark_finder.recognition import store
from landmark_finder.recognition.store import PhotoRecord
from landmark_finder.verify.keypoints import LocalConfig, LocalStore
from landmark_finder.verify.matching import VerifiedModel

FORMAT1 = 1


def read_v1(root: Path) -> tuple[dict, Path]:
    """Read a format-1 index (read-only: writing needs ``landmark-finder index upgrade``):
    the ``Index`` fields and the path of its faiss graph (built on first use if absent). The
    caller builds the ``Index``, so this module does not import it (no import cycle)."""
    version = root / store.current_name(root)
    try:
        meta = json.loads((version / "meta.json").read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise LandmarkIndexError(f"{root}: index metadata unreadable ({e})") from None
    fv = meta.get("format_version")
    if not isinstance(fv, int) or fv > FORMAT1:
        raise IndexVersionError(
            f"{root}: index format {fv} is newer than this landmark-finder supports "
            f"({FORMAT1}); upgrade landmark-finder or rebuild the index"
        )
    try:
        desc = np.load(version / "descriptors.npy", allow_pickle=False)
        with open(version / "records.csv", newline="", encoding="utf-8") as f:
            records = [
                PhotoRecord(r["landmark_id"], r["path"], r["sha256"]) for r in csv.DictReader(f)
            ]
        whitening = None
        if meta.get("whitening"):
            with np.load(version / "whitening.npz", allow_pickle=False) as z:
                whitening = Whitening(z["mean"], z["projection"])
        dpath = version / "distractors.npy"
        distractors = np.load(dpath, allow_pickle=False) if dpath.exists() else None
        vpath, npath = version / "views.npy", version / "negatives.npy"
        views = np.load(vpath, allow_pickle=False) if vpath.exists() else None
        negatives = np.load(npath, allow_pickle=False) if npath.exists() else None
        catalog = load_catalog(version / "catalog.csv")
        local = (
            LocalStore.load(version, LocalConfig.from_dict(meta["local"]))
            if meta.get("local")
            else None
        )
        verified = (
            VerifiedModel.from_dict(meta["verification"])
            if local is not None and meta.get("verification")
            else None
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LandmarkIndexError(
            f"{root}: index data unreadable ({e}); rebuild the index"
        ) from None
    if views is not None and (views.ndim != 3 or len(views) != len(desc)):
        raise LandmarkIndexError(f"{root}: views do not match the descriptors; rebuild the index")
    if len(records) != len(desc) or (local is not None and len(local) != len(desc)):
        raise LandmarkIndexError(
            f"{root}: {len(records)} records but {len(desc)} descriptors"
            f"{f' and {len(local)} local feature sets' if local is not None else ''}; rebuild"
        )
    fields = dict(
        **store.settings_from_meta(meta),
        descriptors=desc,
        records=records,
        catalog=catalog,
        whitening=whitening,
        distractors=distractors,
        local=local,
        verified=verified,
        version=version.name,
        views=views,
        negatives=negatives,
    )
    return fields, version / "ann.faiss"

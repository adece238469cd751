"""Reading format-1 indexes (one complete folder per version, ``v-<stamp>/``), read-only.

They keep answering queries after an update of landmark-finder; ``landmark-finder index
upgrade`` rewrites one as format 2 (segments), which every write needs.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from landmark_finder.errors import IndexVersionError, LandmarkIndexError
from landmark_finder.recognition import store
from landmark_finder.recognition.model_files import read_model
from landmark_finder.recognition.store import PhotoRecord
from landmark_finder.verify.keypoints import LocalConfig, LocalStore

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
        local = (
            LocalStore.load(version, LocalConfig.from_dict(meta["local"]))
            if meta.get("local")
            else None
        )
        optional = (version / f"{role}.npy" for role in ("distractors", "views", "negatives"))
        paths = {p.stem: p if p.exists() else None for p in optional}
        paths["catalog"] = version / "catalog.csv"
        paths["whitening"] = version / "whitening.npz" if meta.get("whitening") else None
        fields = read_model(root, meta, paths, len(desc), local is not None)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LandmarkIndexError(
            f"{root}: index data unreadable ({e}); rebuild the index"
        ) from None
    if len(records) != len(desc) or (local is not None and len(local) != len(desc)):
        raise LandmarkIndexError(
            f"{root}: {len(records)} records but {len(desc)} descriptors"
            f"{f' and {len(local)} local feature sets' if local is not None else ''}; rebuild"
        )
    fields.update(descriptors=desc, records=records, local=local, version=version.name)
    return fields, version / "ann.faiss"

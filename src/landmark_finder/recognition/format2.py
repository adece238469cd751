"""Reading format-2 indexes: the manifest, its segments and the model files it names.

Writing is :mod:`landmark_finder.recognition.store` (segments, manifest) and ``Index.commit``
(model files). Nothing is unpickled (``allow_pickle=False``, JSON, CSV).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landmark_finder.errors import LandmarkIndexError
from landmark_finder.recognition import store
from landmark_finder.recognition.model_files import ROLES, read_model
from landmark_finder.recognition.store import PhotoRecord
from landmark_finder.verify.keypoints import LocalConfig, LocalStore, LocalView

#: Files of a persisted search structure: the faiss index, and for the compressed search the
#: lengths its re-scoring needs (or, written by earlier versions, its full vectors).
SEARCH_FILES = ("ann", "ann_lengths", "ann_vectors")


def read_v2(root: Path) -> tuple[dict, dict[str, Path | None]]:
    """Read the current format-2 version: the ``Index`` fields, and the paths of its persisted
    search files by role (:data:`SEARCH_FILES`, None when not saved). The caller builds the
    ``Index``, so this module does not import it (no import cycle)."""
    m = store.read_manifest(root)
    meta = m.meta
    try:
        cfg = LocalConfig.from_dict(meta["local"]) if meta.get("local") else None
        records: list[PhotoRecord] = []
        descs, parts = [], []
        for ref in m.segments:
            recs, desc, local, live = store.load_segment(root, ref, cfg is not None)
            records += recs
            descs.append(np.asarray(desc[live], store.DESCRIPTOR_DTYPE))
            if cfg is not None:
                parts.append((LocalStore.from_arrays(cfg, *local), live))
        dim = int(meta.get("dim", 0))
        desc = np.concatenate(descs) if descs else np.zeros((0, dim), store.DESCRIPTOR_DTYPE)
        files = m.files
        local = LocalView.of(cfg, parts) if cfg is not None else None
        paths = {role: root / files[role] if files.get(role) else None for role in ROLES}
        fields = read_model(root, meta, paths, len(desc), local is not None)
        fields.update(
            descriptors=desc,
            records=records,
            local=local,
            segments=m.segments,
            version=m.name,
            refit_pending=bool(meta.get("refit_pending")),
            # written before these were kept: the model was fitted on the photos it has now
            fitted_photos=int(meta.get("fitted_photos", len(desc))),
            fitted_landmarks=int(
                meta.get("fitted_landmarks", len({r.landmark_id for r in records}))
            ),
            changed_since_fit=int(meta.get("changed_since_fit", 0)),
        )
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LandmarkIndexError(
            f"{root}: index data unreadable ({e}); rebuild the index"
        ) from None
    return fields, {r: root / files[r] if files.get(r) else None for r in SEARCH_FILES}

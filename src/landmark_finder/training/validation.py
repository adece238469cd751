"""How a training run is validated: retrieval of held-out photos among the training photos
(mAP and top-1, the metric that matters for recognition), and held-out whole landmarks."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from landmark_finder.training.data import Collection


def retrieval_scores(
    q: torch.Tensor,
    q_lab: np.ndarray,
    g: torch.Tensor,
    g_lab: np.ndarray,
    leave_one_out: bool = False,
) -> tuple[float, float]:
    """(mAP, top-1) of queries ``q`` ranking gallery ``g`` by cosine similarity; with
    ``leave_one_out`` (``g`` is ``q``) each photo ranks the others."""
    if len(q) < 1 + leave_one_out or len(g) == 0:
        return math.nan, math.nan
    sims = (F.normalize(q, dim=-1) @ F.normalize(g, dim=-1).T).numpy()
    if leave_one_out:
        np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)
    if leave_one_out:
        order = order[:, :-1]  # the photo itself, ranked last
    rel = g_lab[order] == q_lab[:, None]
    top1 = float(rel[:, 0].mean())
    hits = np.cumsum(rel, axis=1)
    prec = hits / np.arange(1, rel.shape[1] + 1)
    n_rel = np.maximum(rel.sum(1), 1)
    ap = (prec * rel).sum(1) / n_rel
    return float(ap.mean()), top1


def held_out_landmarks(col: Collection, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) with ``n`` whole landmarks held out for validation.

    Validating on landmarks the head never saw measures what a user adding a new landmark gets;
    a per-photo split only measures the trained landmarks. The landmarks are chosen by a seeded
    hash of their ids, so the choice is stable when others are added.
    """
    import hashlib

    if n >= len(col.classes) - 1:
        raise ValueError(
            f"cannot hold out {n} of {len(col.classes)} landmarks: at least 2 must "
            "stay for training"
        )
    key = [hashlib.sha256(f"{seed}:{c}".encode()).hexdigest() for c in col.classes]
    held = set(np.argsort(key)[:n].tolist())
    is_val = np.array([lab in held for lab in col.labels])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)

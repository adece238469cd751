"""Several views of one photo: the whole frame plus crops, each described on its own.

With only a few reference photos of a landmark, a query framed differently (a close-up of a
gate, the tower without its courtyard) may match no reference as a whole, yet match a *region*
of one. Describing crops of both the references and the query and scoring a reference by the
best pair of views recovers those matches (few-shot top-1 at 3 references, global only,
measured in ``bench/fewshot.py``). View 0 is always the whole photo, so an index without views
behaves exactly as before.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Named view sets: (left, top, right, bottom) boxes as fractions of the photo.
VIEW_SETS: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "full": ((0.0, 0.0, 1.0, 1.0),),
    # whole frame, centre crop, and four overlapping corner crops (70 % of each side)
    "crops": (
        (0.0, 0.0, 1.0, 1.0),
        (0.15, 0.15, 0.85, 0.85),
        (0.0, 0.0, 0.7, 0.7),
        (0.3, 0.0, 1.0, 0.7),
        (0.0, 0.3, 0.7, 1.0),
        (0.3, 0.3, 1.0, 1.0),
    ),
}


def view_boxes(name: str) -> tuple[tuple[float, float, float, float], ...]:
    try:
        return VIEW_SETS[name]
    except KeyError:
        raise ValueError(f"unknown view set {name!r}; choose from {', '.join(VIEW_SETS)}") from None


def crop_views(img: Image.Image, name: str) -> list[Image.Image]:
    """The photo's views for view set ``name`` (view 0: the photo itself)."""
    w, h = img.size
    out = []
    for left, top, right, bottom in view_boxes(name):
        if (left, top, right, bottom) == (0.0, 0.0, 1.0, 1.0):
            out.append(img)
            continue
        box = (round(left * w), round(top * h), round(right * w), round(bottom * h))
        out.append(img.crop(box) if box[2] > box[0] and box[3] > box[1] else img)
    return out


#: Smallest crop side of the "crops" set, as a fraction: photos are decoded this much larger so
#: that a crop still reaches the network's input size.
MIN_CROP_FRACTION = 0.7


def as_grid(x: np.ndarray) -> np.ndarray:
    """(N, D) descriptors -> (N, 1, D); (N, V, D) views stay as they are."""
    x = np.asarray(x, np.float32)
    return x[:, None, :] if x.ndim == 2 else x


def pool_rows(sims: np.ndarray, ids: np.ndarray, n_views: int, k: int):
    """Best similarity per gallery photo from hits on its views (vector ``i`` is photo
    ``i // n_views``): ``sims``/``ids`` of any shape -> (k,) similarities descending, (k,) rows."""
    s, r = np.ravel(sims), np.ravel(ids) // max(n_views, 1)
    order = np.argsort(-s, kind="stable")
    s, r = s[order], r[order]
    _, first = np.unique(r, return_index=True)
    keep = np.sort(first)[:k]
    return s[keep], r[keep]


def photo_hits(sims: np.ndarray, ids: np.ndarray, n_views: int, k: int):
    """One query's search hits, (V, K) from its views or (K,) from one descriptor, on a gallery
    of ``n_views`` views per photo -> (k,) best-view-pair similarities, (k,) photo rows."""
    s, r = np.atleast_2d(sims), np.atleast_2d(ids)
    if max(n_views, 1) == 1 and len(s) == 1:  # each photo once already, best first
        return s[0][:k], r[0][:k]
    return pool_rows(s, r, n_views, k)


def search_views(searcher, query: np.ndarray, n_views: int, k: int):
    """One query's views (V, d) or descriptor (d,) against a searcher over the gallery's views
    (``n_views`` per photo, row-major) -> (k,) best-view-pair similarities, (k,) photo rows."""
    q = np.atleast_2d(np.asarray(query, np.float32))
    sims, ids = searcher.search(q, k * max(n_views, 1))
    return photo_hits(sims, ids, n_views, k)


def grid_search(queries: np.ndarray, gallery: np.ndarray, k: int, chunk: int = 64):
    """Exact search of many queries' views (Q, Vq, d) against gallery views (N, Vg, d): a
    photo pair's similarity is its best view pair. Returns (Q, k) similarities and rows."""
    q, g = as_grid(queries), as_grid(gallery)
    n, vg, d = g.shape
    k = min(k, n)
    flat = g.reshape(-1, d)
    out_s = np.zeros((len(q), k), np.float32)
    out_r = np.zeros((len(q), k), np.int64)
    for a in range(0, len(q), chunk):
        qs = q[a : a + chunk]
        s = (qs.reshape(-1, d) @ flat.T).reshape(len(qs), qs.shape[1], n, vg).max(axis=(1, 3))
        if k < n:
            part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        else:
            part = np.tile(np.arange(n), (len(s), 1))
        top = np.take_along_axis(s, part, 1)
        order = np.argsort(-top, axis=1, kind="stable")
        out_s[a : a + chunk] = np.take_along_axis(top, order, 1)
        out_r[a : a + chunk] = np.take_along_axis(part, order, 1)
    return out_s, out_r

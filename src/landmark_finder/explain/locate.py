"""Where in the photo is the landmark: boxes in original-photo pixels, best first.

The original project slid its classifier over the photo, one forward pass per window, and took
over a minute per photo. Here it takes two dense passes and a few dozen small crops:

1. *Evidence.* The backbone runs once at two scales; each place's contribution to the
   similarity with the landmark's references (gradient × activation, :mod:`dense`) gives an
   evidence map. Its maximum-sum rectangle — cells above 1.5x their uniform share, found
   exactly with 2-D prefix sums — is where the landmark's distinctive parts are.
2. *Extent.* Evidence sits on the most distinctive parts (a dome, a gate), while a photo of the
   landmark also shows its setting, and dense features cannot say where that ends: every cell
   of a CNN's last layer sees hundreds of pixels around it. Boxes pooled straight from the
   feature map (the integral-image way) therefore favour small cores and found the pasted
   photo in only 20-57 % of test composites. A crop, though, can be described on its own,
   exactly as the gallery was: the box grows from the evidence rectangle (x1, 1.3, 1.6, 2) and
   is then refined edge by edge (steps of 30, 15 % of its size), each candidate scored
   by describing the crop and comparing it with the landmark's references (mean similarity of
   the 3 nearest, as recognition scores landmarks). About 25 crops at the index's size,
   ~13 ms each on 2 cores, two described at a time.
3. *Which landmark.* Given, or else the recognized one. When the photo as a whole is not
   recognized (a landmark in a corner of a busy photo), the three best candidates are each
   localised roughly and the one whose best crop matches best wins: on composites this picks
   the right landmark far more often (65-72 % against 42-45 % for the whole-photo answer).
4. *More boxes.* Evidence left outside the found boxes is searched again; a further box is
   kept when its crop scores at least 80 % of the best one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from landmark_finder.errors import DenseUnsupported
from landmark_finder.explain.boxes import Box, LocateResult
from landmark_finder.explain.composites import iou
from landmark_finder.explain.dense import (
    LandmarkRefs,
    dense_model,
    evidence,
    landmark_refs,
    region_boxes,
    region_descriptors,
    scales_for,
)
from landmark_finder.explain.landmarks import (
    SOURCE_SIDE,
    LandmarksResult,
    corners,
    downscale,
    find_landmarks,
    locate_geometric,
    windows_of,
)
from landmark_finder.i18n import current_language

if TYPE_CHECKING:  # pragma: no cover
    from landmark_finder.recognition.recognizer import Recognition, Recognizer

WORK_SIDE = 512  # long side the dense passes and the evidence map work at
CROP_SIDE = 1024  # long side crops are cut from (then described at the index's size)
NSCALES = 3
CELL = 8  # work-image pixels per evidence cell
TAUS = (1.0, 2.0)  # evidence cells count when above TAU x their uniform share; one seed per TAU
EXPANSIONS = (1.0, 1.3, 1.6, 2.0)
#: A third step (0.1) costs 8 more crops per search for nothing measurable: on four sets of 50
#: held-out composites box IoU >= 0.5 was 0.725 with it and 0.715 without (landmark given),
#: 0.71 and 0.705 (recognized).
STEPS = (0.3, 0.15)
#: Crops described at once (threads over the one ONNX session, which releases the GIL): on 2
#: cores, 13.5 against 16.8 ms per crop, one at a time.
CROP_WORKERS = 2
CANDIDATES = 3  # landmarks tried when the whole photo is not recognized
TIE = 0.1  # relative score difference treated as a tie (then the wider box wins)
SECONDARY_MIN = 0.8  # a further box must score this fraction of the best one
#: The one pass whose feature map scores the regions of a crowded photo runs at this multiple of
#: the index's input size (a region of a third to two thirds of the photo then has about the
#: scale the gallery was described at). On 50 composites of held-out photos (Lite2 index, 352
#: px) the best-scoring region named the pasted landmark in 0.68 / 0.84 / 0.88 of them at 1 /
#: 2 / 2.5 times (0.07 / 0.08 / 0.11 s for the pass and the pooling); through ``locate``, on
#: two sets of 50, right landmarks 0.82, 0.76 / 0.84, 0.82 / 0.82, 0.82 at 2 / 2.5 / 3 times,
#: and 0 / 0 / 3 of the 125 everyday photos named a landmark.
REGION_SCALE = 2.5
MIN_CROP = 16  # px of the crop source

BoxF = tuple[float, float, float, float]


# --- the search ------------------------------------------------------------------------------


def max_sum_box(v: np.ndarray) -> tuple[int, int, int, int] | None:
    """Rectangle (y0, x0, y1, x1), exclusive ends, with the largest sum of ``v``; exact.

    For every pair of rows the column sums make a 1-D maximum-subarray problem, solved for all
    pairs at once with running minima of prefix sums: O(h²·w) with numpy, ~2 ms for 64×64.
    """
    h, w = v.shape
    if h == 0 or w == 0:
        return None
    integral = np.pad(np.asarray(v, np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ya, yb = np.triu_indices(h + 1, 1)
    cols = integral[yb] - integral[ya]  # (pairs, w+1): prefix sums along x for each row band
    runmin = np.minimum.accumulate(cols[:, :-1], axis=1)
    at = np.maximum.accumulate(np.where(cols[:, :-1] <= runmin, np.arange(w), 0), axis=1)
    gains = cols[:, 1:] - runmin
    r, x = np.unravel_index(int(np.argmax(gains)), gains.shape)
    if gains[r, x] <= 0:
        return None
    return int(ya[r]), int(at[r, x]), int(yb[r]), int(x) + 1


def _evidence_box(ev: np.ndarray, tau: float) -> BoxF | None:
    """Max-sum rectangle of the evidence above ``tau`` x uniform, in work pixels."""
    total = float(ev.sum())
    if total <= 0:
        return None
    cells = max_sum_box(ev - tau * total / ev.size)
    if cells is None:
        return None
    y0, x0, y1, x1 = cells
    return (x0 * CELL, y0 * CELL, x1 * CELL, y1 * CELL)


def _expand(b: BoxF, f: float, size: tuple[int, int]) -> BoxF:
    cx, cy, hw, hh = (
        (b[0] + b[2]) / 2,
        (b[1] + b[3]) / 2,
        (b[2] - b[0]) / 2 * f,
        (b[3] - b[1]) / 2 * f,
    )
    return (
        max(0.0, cx - hw),
        max(0.0, cy - hh),
        min(float(size[0]), cx + hw),
        min(float(size[1]), cy + hh),
    )


def _widest_tie(
    scored: dict[tuple[int, int, int, int], float], box: BoxF, score: float
) -> tuple[BoxF, float]:
    """The largest scored box overlapping ``box`` that scores within TIE of it.

    Crops of a landmark with a little more or less of its setting score nearly alike, and the
    most distinctive core tends to win by a hair; the photo of the landmark is the wider box.
    """
    if TIE <= 0:
        return box, score
    best = (box, score)
    area = (box[2] - box[0]) * (box[3] - box[1])
    for k, sc in scored.items():
        a = (k[2] - k[0]) * (k[3] - k[1])
        if sc >= score - TIE * abs(score) and a > area and iou(k, box) >= 0.5:
            best, area = (tuple(map(float, k)), sc), a
    return best


def _refine(
    box: BoxF, score: float, scorer: Callable[[list[BoxF]], list[float]], size: tuple[int, int]
) -> tuple[BoxF, float]:
    """Coordinate ascent on the four edges, each step a fraction of the box's size."""
    for step in STEPS:
        w, h = box[2] - box[0], box[3] - box[1]
        moves = []
        for edge, delta in ((0, w), (1, h), (2, w), (3, h)):
            for sign in (-1, 1):
                b = list(box)
                b[edge] = float(np.clip(b[edge] + sign * step * delta, 0, size[edge % 2]))
                if b[2] - b[0] >= 1 and b[3] - b[1] >= 1:
                    moves.append(tuple(b))
        if not moves:
            break
        scores = scorer(moves)
        j = int(np.argmax(scores))
        if scores[j] > score:
            box, score = moves[j], scores[j]
    return box, score


@dataclass
class _Photo:
    """One photo prepared for the search: work copy, crop source, dense feature maps."""

    recognizer: Recognizer
    work: Image.Image
    src: Image.Image
    fmaps: list[np.ndarray]

    @property
    def size(self) -> tuple[int, int]:
        return self.work.size

    @property
    def grid(self) -> tuple[int, int]:
        return (
            max(1, math.ceil(self.work.width / CELL)),
            max(1, math.ceil(self.work.height / CELL)),
        )

    def evidence(self, refs: LandmarkRefs) -> np.ndarray:
        index = self.recognizer.index
        return evidence(dense_model(index), index, self.fmaps, refs.mean, self.grid)

    def seeds(self, ev: np.ndarray | None) -> list[BoxF]:
        """Boxes of the evidence at each threshold; the whole photo without evidence."""
        whole = (0.0, 0.0, float(self.size[0]), float(self.size[1]))
        return [_evidence_box(ev, tau) or whole for tau in TAUS] if ev is not None else [whole]

    def crop(self, box: BoxF) -> Image.Image | None:
        k = self.src.width / self.work.width
        b = (
            max(0, round(box[0] * k)),
            max(0, round(box[1] * k)),
            min(self.src.width, round(box[2] * k)),
            min(self.src.height, round(box[3] * k)),
        )
        w, h = b[2] - b[0], b[3] - b[1]
        # the extractor resizes the long side to the index's size: keep the short side > 32 px (ONNX
        # Runtime fails below)
        if min(w, h) < MIN_CROP or min(w, h) * self.recognizer.index.preprocessing.size < 33 * max(
            w, h
        ):
            return None
        return self.src.crop(b)


def _choose_landmark(photo: _Photo) -> str | None:
    """The recognized landmark; else the best answer among zoomed-in views of the photo.

    A landmark in a corner of a busy photo is often not recognized from the whole photo. The
    evidence maps of the top candidates point at the landmark-like regions; each region is
    cropped and recognized as a photo of its own, and the most confident answer wins.
    """
    rec = photo.recognizer
    r = rec.recognize(photo.work)
    if not r.candidates:
        return None
    if r.status == "recognized" and r.landmark is not None:
        return r.landmark.id
    best_conf, best_id = r.confidence, r.candidates[0].landmark.id
    for cand in r.candidates[:CANDIDATES]:
        seed = photo.seeds(photo.evidence(landmark_refs(rec, cand.landmark.id)))[0]
        for f in (EXPANSIONS[0], EXPANSIONS[2]):
            crop = photo.crop(_expand(seed, f, photo.size))
            if crop is None:
                continue
            rr = rec.decide(rec.describe(crop))
            if rr.candidates and rr.confidence > best_conf:
                best_conf, best_id = rr.confidence, rr.candidates[0].landmark.id
    return best_id


def locate(
    recognizer: Recognizer,
    image: Image.Image,
    landmark_id: str | None = None,
    max_boxes: int = 3,
    name: str = "",
    dense_only: bool = False,
) -> LocateResult:
    """Boxes where ``landmark_id`` (default: the recognized landmark) is in ``image``.

    ``image`` is an upright RGB photo (e.g. from :func:`load_image`); boxes are in its pixels,
    best first, each with its crop's similarity to the landmark (the scale of
    :attr:`Candidate.score`). Geometry first: when verification matches a reference photo, the
    box and ``polygon`` come from its homography (:mod:`landmark_finder.explain.landmarks`);
    without ``landmark_id`` every landmark of the photo is listed in ``landmarks``. The dense
    search is the fallback (and the only method with ``dense_only``); a backbone without a
    feature map (a global vector only) falls back to windows of the photo instead. Raises
    ``ValueError`` for a landmark the index has no photos of, or ``dense_only`` on such an
    index (:class:`~landmark_finder.errors.DenseUnsupported`).
    """
    t0 = time.perf_counter()
    img = image.convert("RGB")
    if not dense_only and recognizer.verify:
        if landmark_id is None:
            found = find_landmarks(
                recognizer,
                img,
                name,
                dense=DenseFallback(recognizer),
            )
            if not found.landmarks:
                return LocateResult(name, None, None, [], time.perf_counter() - t0)
            f = found.landmarks[0]
            return LocateResult(
                name,
                f.landmark.id,
                f.landmark.name_in(current_language()),
                [Box(*f.box, f.score)],
                time.perf_counter() - t0,
                f.polygon,
                found.landmarks,
            )
        refs = landmark_refs(recognizer, landmark_id)  # ValueError for an unknown landmark
        f = locate_geometric(recognizer, img, landmark_id)
        if f is not None:
            score = f.score or refs.score(recognizer.describe(img.crop(f.box)))
            return LocateResult(
                name,
                landmark_id,
                refs.name,
                [Box(*f.box, score)],
                time.perf_counter() - t0,
                f.polygon,
                [f],
            )
    photo = _prepare(recognizer, img, downscale(img, WORK_SIDE), required=dense_only)
    if not photo.fmaps:  # a backbone giving only a global vector
        return _locate_by_windows(photo, img, landmark_id, name, t0)
    work = photo.work
    lid = landmark_id if landmark_id is not None else _choose_landmark(photo)
    if lid is None:
        return LocateResult(name, None, None, [], time.perf_counter() - t0)
    refs = landmark_refs(recognizer, lid)
    found_boxes = _find_boxes(photo, refs, max(1, int(max_boxes)))
    boxes = _to_photo(found_boxes, img, work)
    poly = corners(boxes[0].xyxy) if boxes else None
    return LocateResult(name, refs.landmark_id, refs.name, boxes, time.perf_counter() - t0, poly)


def _locate_by_windows(
    photo: _Photo, img: Image.Image, landmark_id: str | None, name: str, t0: float
) -> LocateResult:
    """A backbone without a feature map (a global vector only) when geometry placed nothing:
    the whole photo and its windows (those of a crowded photo) are the proposals, each scored
    by its crop's similarity to the landmark's references, the best refined edge by edge."""
    recognizer, work, lid = photo.recognizer, photo.work, landmark_id
    if lid is None:
        r = recognizer.recognize(img)
        lid = r.landmark.id if r.status == "recognized" and r.landmark is not None else None
    if lid is None:
        return LocateResult(name, None, None, [], time.perf_counter() - t0)
    refs = landmark_refs(recognizer, lid)
    whole = (0, 0, work.width, work.height)
    props = [tuple(float(v) for v in b) for b in windows_of(whole)]
    boxes = _to_photo(_find_boxes(photo, refs, 1, props), img, work)
    poly = corners(boxes[0].xyxy) if boxes else None
    return LocateResult(name, refs.landmark_id, refs.name, boxes, time.perf_counter() - t0, poly)


def _prepare(
    recognizer: Recognizer, img: Image.Image, work: Image.Image, required: bool = False
) -> _Photo:
    """The photo with its feature maps; without any for a backbone giving only a global vector
    (its proposals are then the seeds and windows alone), or DenseUnsupported if ``required``."""
    index, src = recognizer.index, downscale(img, CROP_SIDE)
    try:
        model = dense_model(index)
    except DenseUnsupported:
        if required:
            raise
        return _Photo(recognizer, work, src, [])
    return _Photo(
        recognizer, work, src, [model.feature_map(work, s) for s in scales_for(index, NSCALES)]
    )


def _to_photo(found: list[tuple[float, BoxF]], img: Image.Image, work: Image.Image) -> list[Box]:
    k = img.width / work.width
    return [
        Box(
            int(round(b[0] * k)),
            int(round(b[1] * k)),
            min(img.width, int(round(b[2] * k))),
            min(img.height, int(round(b[3] * k))),
            float(sc),
        )
        for sc, b in found
    ]


class DenseFallback:
    """The dense search as ``find_landmarks``' fallback: boxes for a landmark recognized
    without a geometric match, and regions worth re-deciding in a photo not recognized as a
    whole. The photo's feature maps are computed once and shared by both."""

    def __init__(self, recognizer: Recognizer):
        self.recognizer = recognizer
        self._photo: tuple[int, _Photo] | None = None
        self._regions: tuple[int, list[tuple[int, int, int, int]], np.ndarray] | None = None

    def regions(self, img: Image.Image) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
        """Regions of the photo (boxes in its pixels) and their descriptors in the index's
        search space, all pooled from one feature map per part of the descriptor
        (:func:`region_descriptors`)."""
        if self._regions is None or self._regions[0] != id(img):
            index = self.recognizer.index
            model = dense_model(index)
            fmaps = model.feature_maps(img, round(REGION_SCALE * index.preprocessing.size))
            _, h, w = fmaps[0].shape
            cells = region_boxes(h, w)
            kx, ky = img.width / w, img.height / h
            boxes = [
                (round(x0 * kx), round(y0 * ky), round(x1 * kx), round(y1 * ky))
                for x0, y0, x1, y1 in cells.tolist()
            ]
            self._regions = (id(img), boxes, region_descriptors(model, index, fmaps, cells))
        return self._regions[1], self._regions[2]

    def _prepared(self, img: Image.Image) -> _Photo:
        if self._photo is None or self._photo[0] != id(img):
            self._photo = (id(img), _prepare(self.recognizer, img, downscale(img, WORK_SIDE)))
        return self._photo[1]

    def box(
        self, img: Image.Image, landmark_id: str, seeds: Sequence[tuple[int, int, int, int]] = ()
    ) -> tuple[tuple[int, int, int, int], float]:
        """The dense search's best box for the landmark, and its score. ``seeds`` (photo
        pixels: a geometric outline's box, a window the landmark was recognized in) compete
        with the evidence's proposals on the same crop similarity before the refinement, so a
        good geometric box is kept and a coarse one is improved."""
        photo = self._prepared(img)
        k = photo.work.width / img.width
        extra = [tuple(float(v) * k for v in b) for b in seeds]
        found = _find_boxes(photo, landmark_refs(self.recognizer, landmark_id), 1, extra)
        b = _to_photo(found, img, photo.work)[0]
        return b.xyxy, b.score


def _find_boxes(
    photo: _Photo, refs: LandmarkRefs, max_boxes: int, extra: Sequence[BoxF] = ()
) -> list[tuple[float, BoxF]]:
    with ThreadPoolExecutor(CROP_WORKERS) as pool:
        return _search_boxes(photo, refs, max_boxes, extra, pool)


def _search_boxes(
    photo: _Photo,
    refs: LandmarkRefs,
    max_boxes: int,
    extra: Sequence[BoxF],
    pool: ThreadPoolExecutor,
) -> list[tuple[float, BoxF]]:
    size = photo.size
    cache: dict[tuple[int, int, int, int], float] = {}

    def describe(box: BoxF) -> float:
        crop = photo.crop(box)
        return -1.0 if crop is None else refs.score(photo.recognizer.describe(crop))

    def scores(boxes: list[BoxF]) -> list[float]:
        keys = [tuple(int(round(v)) for v in b) for b in boxes]
        todo = {k: b for k, b in zip(keys, boxes, strict=True) if k not in cache}
        cache.update(zip(todo, pool.map(describe, todo.values()), strict=True))
        return [cache[k] for k in keys]

    # without feature maps (a global-vector backbone) the whole photo and ``extra`` are the
    # proposals
    ev = photo.evidence(refs) if photo.fmaps else None
    props = [_expand(seed, f, size) for seed in photo.seeds(ev) for f in EXPANSIONS]
    props += list(extra)
    best_score, best_box = max(zip(scores(props), props, strict=True), key=lambda t: t[0])
    best_box, best_score = _refine(best_box, best_score, scores, size)
    best_box, best_score = _widest_tie(cache, best_box, best_score)
    found: list[tuple[float, BoxF]] = [(best_score, best_box)]

    if ev is None:
        return found
    residual = ev.copy()
    while len(found) < max_boxes:
        for _, b in found:  # evidence already explained by a box
            residual[
                int(b[1] // CELL) : math.ceil(b[3] / CELL),
                int(b[0] // CELL) : math.ceil(b[2] / CELL),
            ] = 0
        if residual.sum() < 0.2 * max(float(ev.sum()), 1e-12):
            break
        seed = _evidence_box(residual, TAUS[0])
        if seed is None:
            break
        more = [_expand(seed, f, size) for f in (1.0, 1.4)]
        sc, b = max(zip(scores(more), more, strict=True), key=lambda t: t[0])
        if sc < SECONDARY_MIN * best_score or any(iou(b, f[1]) > 0.3 for f in found):
            break
        found.append((sc, b))
    return sorted(found, key=lambda t: -t[0])


def recognize_all(
    recognizer: Recognizer,
    source,
    top_k: int = 5,
    name: str | None = None,
    larger: Image.Image | None = None,
) -> tuple[Recognition, LandmarksResult]:
    """``Recognizer.recognize`` (its answer unchanged) and every landmark of the photo.

    ``source``: a path, bytes, a file or an upright RGB image, as ``recognize`` takes (an
    image: the photo as recognized, at the recognizer's ``load_side``). ``larger``: the same
    photo decoded at :func:`larger_side`, which the regions of a crowded photo are
    cut from (decoded here from a path or bytes when not given); boxes are in its pixels. The
    whole-photo recognition and its keypoints are reused by :func:`find_landmarks`, so the
    extra cost is only the located regions' own decisions (and the dense search for a photo
    recognized without a geometric match)."""
    from landmark_finder.core.images import ImageLoadError, load_image
    from landmark_finder.recognition.recognizer import QUERY_DRAFT_SLACK

    label = name or (str(source) if isinstance(source, (str, Path)) else "<upload>")
    if hasattr(source, "read"):  # a file: read once, decoded twice
        source = source.read()
    try:
        if isinstance(source, Image.Image):
            img = source.convert("RGB")
        else:  # decoded as ``recognize`` decodes it: the same answer
            img = load_image(
                source, max_side=recognizer.load_side, name=name, draft_slack=QUERY_DRAFT_SLACK
            )
            side = larger_side(recognizer, img)
            if larger is None and side is not None:
                larger = load_image(source, max_side=side, name=name)
    except ImageLoadError:
        return recognizer.recognize(source, top_k, name), LandmarksResult(label)
    r = recognizer.recognize(img, top_k, name=label)
    photo = larger if larger is not None else img
    if r.status == "error" or not r.candidates:
        return r, LandmarksResult(label, [], r, size=photo.size)
    found = find_landmarks(
        recognizer,
        photo,
        label,
        dense=DenseFallback(recognizer),
        whole=r,
        recognized=img,
    )
    return r, found


def larger_side(recognizer: Recognizer, recognized: Image.Image) -> int | None:
    """Long side to decode a second, larger copy of the photo at for :func:`recognize_all`
    (the regions of a crowded photo are cut from it, see ``landmarks.SOURCE_SIDE``), or None
    when ``recognized``, the photo as decoded for recognition, is already all there is."""
    side = max(recognizer.load_side, SOURCE_SIDE)
    if side > recognizer.load_side and max(recognized.size) >= recognizer.load_side:
        return side
    return None

"""Every landmark a photo shows, each with its outline, confidence and place on the map.

One pass of recognition names one landmark. A photo may show two (a street with a gate and a
tower), or one landmark small among people, cars and sky, where the whole-photo descriptor is
diluted and the answer comes out "unknown". :func:`find_landmarks` works from what
verification already computed:

1. *Whole photo.* The photo is described and verified once (the recognition itself, reused
   when the caller already has it). Every verified candidate whose homography has more
   inliers than chance (the index's ``chance_inliers``) is located by geometry
   (:mod:`landmark_finder.verify.geometry`): the reference photo's frame projected into the
   photo, no extra network pass.
2. *Re-decide the region.* The located region is cropped (from the photo at up to
   :data:`SOURCE_SIDE`, not the thumbnail recognition works on), described as a photo of its
   own and decided again with its own keypoints (SIFT on the crop: a small region gets the detail a
   whole-photo pass spends on the rest): its own calibrated confidence. A landmark
   among clutter is recognized from its region (the whole-photo answer may be "unknown"); a
   chance match on a distractor photo does not survive this second, independent decision.
3. *Crowded photos.* When the whole photo is not recognized and nothing matched
   geometrically, regions of the photo are described from one feature map per network
   (``dense.regions``: GeM over each box of cells, no network pass per region) and decided on
   their global descriptors; the most confident region of each of the best landmarks is
   recognized with its own keypoints (:func:`_crowded`). A region is one of many tries per
   photo, so its answer also needs geometric support (:data:`MIN_REGION_INLIERS`) unless its
   global answer was certain (:data:`REGION_CERTAIN`, whatever the index's skip rule says).
   When no region is supported but the best looked like a landmark (:data:`WINDOWS_AFTER`),
   windows of the photo are described one by one and the most confident recognized the same
   way.
4. *The box.* Every box found so far (a geometric outline, a window) competes with the
   dense search's proposals on the similarity of its crop to the landmark's references
   (:mod:`landmark_finder.explain.locate`, passed in as ``dense``), and the best is refined
   edge by edge. The homography places the *reference photo's* frame, which may show more
   or less of the setting than this photo does; on composites of held-out photos the crop
   similarity chose better boxes (IoU >= 0.5 in 0.77 of them against 0.53).
5. *The rest of the photo.* The found regions are discounted: each large strip of the photo
   outside them (left, right, above, below) is recognized on its own, so further landmarks
   surface; each is located and re-decided the same way, and the largest strip is searched by
   windows as a crowded photo. This stops when no strip yields a new landmark.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image

from landmark_finder.core.catalog import Landmark
from landmark_finder.errors import DenseUnsupported
from landmark_finder.verify.geometry import Outline, outline, photo_size
from landmark_finder.verify.keypoints import LocalFeatures
from landmark_finder.verify.matching import Matcher

if TYPE_CHECKING:  # pragma: no cover
    from landmark_finder.recognition.answers import Candidate
    from landmark_finder.recognition.recognizer import Recognition, Recognizer

BoxI = tuple[int, int, int, int]


class Dense(Protocol):
    """The dense search, for photos geometry cannot place (see ``explain.locate``)."""

    def box(
        self, img: Image.Image, landmark_id: str, seeds: Sequence[BoxI] = ()
    ) -> tuple[BoxI, float]: ...

    def regions(self, img: Image.Image) -> tuple[list[BoxI], np.ndarray]: ...


MAX_LANDMARKS = 4
MIN_STRIP = 0.2  # a strip left after discounting found landmarks: at least this share of the photo
MIN_STRIP_PX = 48
WINDOWS = ((0.5, 3), (0.7, 2))  # crowded photos: window side (share of the photo's), positions
#: ...and in the strip beside a found landmark: 4 windows instead of 13 found as many second
#: landmarks of pairs (0.37 against 0.33-0.43 of 30) and saved 0.35 s per composite
STRIP_WINDOWS = ((0.7, 2),)
CROWDED_WINDOWS = 2  # the most confident windows recognized with their own keypoints
#: The windows (13 network passes, ~0.25 s a photo) are tried only when the best region was at
#: least this confident. On 100 held-out composites the 6 landmarks found by windows after no
#: region was supported had a best region at 0.45-0.98; on the 125 everyday photos the best
#: region is below 0.3 for 70 % of them (median 0.18).
WINDOWS_AFTER = 0.3
WINDOW_MIN_CONFIDENCE = 0.15  # ...when their global answer is at least this confident
#: A window's or strip's answer (one of many tries per photo) needs this many inliers, unless
#: its global answer was certain enough to skip verification. On all 125 everyday photos of the
#: benchmark, the eight window answers that named a landmark had 0-5 inliers; right answers
#: from windows of composites had 6 or more, or skipped verification.
MIN_REGION_INLIERS = 6
#: ...and "certain enough" is at least this confident: an index's skip rule is fitted on whole
#: photos (one try each) and may call any answer above the decision threshold certain (0.50 on
#: a fused index, whose regions then named a landmark in 5 of the 125 everyday photos).
REGION_CERTAIN = 0.7
#: Regions only propose (the best two are decided again by a full search): on a compressed
#: index they are searched re-ranking this many candidates instead of 24,000. At 1M references
#: (bench/scale.py's index, its 952 real queries searched in one call) 7.7 -> 3.5 ms per query,
#: the top landmark equal to exact search's for 94 % of queries instead of 99 %.
REGION_RERANK = 2_400
#: A geometric outline covering this share of the photo is kept without the dense search: a
#: photo of the landmark (on composites the pasted photo covers at most half the photo).
FILLS = 0.8
#: Regions are cut from the photo at up to this long side (the whole photo is recognized at the
#: recognizer's ``load_side``, 512 px for the Lite2 index): a landmark a third of the photo wide
#: then keeps its own pixels. Two held-out photos side by side in a 640 px photo, both found
#: with box IoU >= 0.5: 0.37 -> 0.50 and 0.20 -> 0.30 (two sets of 30); a pasted photo cut out
#: exactly went from "unknown" (0.39) to recognized (0.85) at 640 px instead of 512.
SOURCE_SIDE = 1024
MARGIN = 0.04  # found regions are discounted this share of the photo wider on each side


@dataclass
class FoundLandmark:
    """One landmark in the photo: where (box and 4-point polygon, photo pixels) and how sure."""

    landmark: Landmark
    confidence: float  # calibrated, from the located region's own decision
    box: BoxI
    polygon: list[list[float]]
    #: "frame" | "hull" (geometry), "dense" (the dense search, seeded with the window or the
    #: geometric box it was recognized in), "window" (no dense search available)
    located_by: str
    inliers: int | None = None
    reference: str = ""
    score: float = 0.0  # the region's similarity to the landmark (scale of Candidate.score)

    def scaled(self, k: float, size: tuple[int, int]) -> FoundLandmark:
        """The same answer in a photo ``k`` times larger (of size ``size``)."""
        b = self.box
        box = (
            max(0, round(b[0] * k)),
            max(0, round(b[1] * k)),
            min(size[0], round(b[2] * k)),
            min(size[1], round(b[3] * k)),
        )
        poly = [[round(x * k, 1), round(y * k, 1)] for x, y in self.polygon]
        return replace(self, box=box, polygon=poly)

    def to_dict(self, lang: str | None = None) -> dict:
        lm = self.landmark.localized(lang)
        return {
            "id": lm.id,
            "name": lm.name,
            "address": lm.address,
            "latitude": lm.latitude,
            "longitude": lm.longitude,
            "confidence": round(float(self.confidence), 4),
            "box": list(self.box),
            "polygon": self.polygon,
            "located_by": self.located_by,
            "inliers": self.inliers,
        }


@dataclass
class LandmarksResult:
    """What :func:`find_landmarks` found, best first, and the whole-photo recognition."""

    image: str
    landmarks: list[FoundLandmark] = field(default_factory=list)
    recognition: Recognition | None = None
    seconds: float = 0.0
    size: tuple[int, int] = (1, 1)  # (w, h) of the photo the boxes and polygons are in

    def to_dicts(self, lang: str | None = None) -> list[dict]:
        return [f.to_dict(lang) for f in self.landmarks]


def _verifies(rec: Recognizer) -> bool:
    """Whether ``rec`` verifies geometrically (then every region is verified too)."""
    return bool(rec.verify and rec.index.local is not None)


def _subset(kp: LocalFeatures | None, box: BoxI, exclude: list[BoxI]) -> LocalFeatures | None:
    """Keypoints inside ``box`` and outside every box of ``exclude``, in ``box``'s pixels."""
    if kp is None:
        return None
    xy = kp.xy
    keep = (xy[:, 0] >= box[0]) & (xy[:, 0] < box[2]) & (xy[:, 1] >= box[1]) & (xy[:, 1] < box[3])
    for b in exclude:
        keep &= ~((xy[:, 0] >= b[0]) & (xy[:, 0] < b[2]) & (xy[:, 1] >= b[1]) & (xy[:, 1] < b[3]))
    off = np.array([box[0], box[1]], np.float32)
    return LocalFeatures(xy[keep] - off, kp.desc[keep])


def _strips(size: tuple[int, int], found: list[BoxI]) -> list[BoxI]:
    """Large rectangles of the photo clear of every found box, largest first."""
    w, h = size
    out: list[BoxI] = []
    for b in found:
        for s in ((0, 0, b[0], h), (b[2], 0, w, h), (0, 0, w, b[1]), (0, b[3], w, h)):
            clear = all(s[2] <= f[0] or s[0] >= f[2] or s[3] <= f[1] or s[1] >= f[3] for f in found)
            sw, sh = s[2] - s[0], s[3] - s[1]
            if clear and min(sw, sh) >= MIN_STRIP_PX and sw * sh >= MIN_STRIP * w * h:
                out.append(s)
    return sorted(set(out), key=lambda s: -(s[2] - s[0]) * (s[3] - s[1]))


def _widen(b: BoxI, size: tuple[int, int]) -> BoxI:
    mx, my = round(MARGIN * size[0]), round(MARGIN * size[1])
    return (max(0, b[0] - mx), max(0, b[1] - my), min(size[0], b[2] + mx), min(size[1], b[3] + my))


class _Search:
    """One photo and the decisions of its regions (each with its own keypoints).

    Boxes are in the pixels of ``img`` (the photo at the recognizer's ``load_side``); crops
    are cut from ``src``, the same photo at up to :data:`SOURCE_SIDE`, so that a region of a
    third of the photo is described and matched from its own pixels, not from an upscaled
    thumbnail."""

    def __init__(
        self,
        rec: Recognizer,
        img: Image.Image,
        src: Image.Image | None = None,
        dense: Dense | None = None,
    ):
        self.rec, self.img = rec, img
        self.src = img if src is None else src
        self.k = self.src.width / img.width
        self.dense = dense
        self.verify = _verifies(rec)
        vm = rec.index.verified
        self.chance = float(vm.chance_inliers) if vm is not None else float("inf")
        self.side = rec.index.local.config.side if rec.index.local is not None else 512
        self._keypoints: dict[BoxI, LocalFeatures | None] = {}
        self._views: dict[BoxI, np.ndarray] = {}

    def to_src(self, b: BoxI) -> BoxI:
        k = self.k
        return (round(b[0] * k), round(b[1] * k), round(b[2] * k), round(b[3] * k))

    def from_src(self, b: BoxI) -> BoxI:
        w, h, k = self.img.width, self.img.height, self.k
        return (
            max(0, round(b[0] / k)),
            max(0, round(b[1] / k)),
            min(w, round(b[2] / k)),
            min(h, round(b[3] / k)),
        )

    def _whole(self, box: BoxI) -> bool:
        return box == (0, 0, self.img.width, self.img.height)

    def crop(self, box: BoxI) -> Image.Image:
        """The region ``box`` cut from the larger source; the whole photo as recognition
        sees it (at ``load_side``)."""
        return self.img if self._whole(box) else self.src.crop(self.to_src(box))

    def keypoints(self, box: BoxI) -> LocalFeatures | None:
        """The crop's own keypoints (in its pixels at ``img``'s scale), computed once per box."""
        if box not in self._keypoints:
            kp = self.rec.local_features(self.crop(box))
            if kp is not None and self.k != 1.0 and not self._whole(box):
                kp = LocalFeatures(kp.xy / np.float32(self.k), kp.desc)
            self._keypoints[box] = kp
        return self._keypoints[box]

    def box(self, landmark_id: str, seeds: Sequence[BoxI] = ()) -> tuple[BoxI, float]:
        """The dense search's box for the landmark (see :class:`Dense`), in ``img``'s pixels;
        its crops are cut from the source."""
        assert self.dense is not None
        b, score = self.dense.box(self.src, landmark_id, [self.to_src(s) for s in seeds])
        return self.from_src(b), score

    def regions(self) -> tuple[list[BoxI], np.ndarray]:
        """The dense search's regions of the photo (in ``img``'s pixels) and descriptors."""
        assert self.dense is not None
        boxes, z = self.dense.regions(self.src)
        return [self.from_src(b) for b in boxes], z

    def decide(
        self,
        box: BoxI,
        exclude: list[BoxI] | None = None,
        local: bool = True,
        always_verify: bool = False,
    ) -> Recognition | None:
        """Recognition of the crop ``box`` (keypoint positions in the crop's pixels), or None
        when it is too small to describe. The crop's keypoints are its own (SIFT on the crop:
        a small region gets the detail a whole-photo pass spends on the rest), without those
        inside ``exclude``; ``local=False``: global descriptor only; ``always_verify``: matched
        even when the global answer looks certain. Descriptors are computed once per box."""
        w, h = box[2] - box[0], box[3] - box[1]
        if min(w, h) < 32:
            return None

        def keypoints() -> LocalFeatures | None:  # only when verification runs
            kp = self.keypoints(box)
            if kp is not None and exclude:
                off = np.array([box[0], box[1]], np.float32)
                kp = _subset(LocalFeatures(kp.xy + off, kp.desc), box, exclude)
            return kp

        if box not in self._views:
            self._views[box] = self.rec.describe_views(self.crop(box))
        local_ = keypoints if local and self.verify else None
        return self.rec.decide(self._views[box], local=local_, always_verify=always_verify)

    def region(self, box: BoxI, exclude: list[BoxI] | None = None) -> Recognition | None:
        """:meth:`decide` for one of many regions tried in a photo: a landmark the index's
        skip rule calls certain without matching (fitted on whole photos, where one try is
        made) is matched all the same below :data:`REGION_CERTAIN`."""
        r = self.decide(box, exclude)
        if (
            r is not None
            and r.verification_skipped
            and r.status != "unknown"
            and r.confidence < REGION_CERTAIN
        ):
            r = self.decide(box, exclude, always_verify=True)
        return r

    def outlines(self, r: Recognition, offset: tuple[int, int]) -> list[tuple[str, Outline]]:
        """Geometric outlines (photo pixels) of the verified candidates above chance, best
        first."""
        got = []
        for c in r.candidates:
            m = r.matches.get(c.landmark.id)
            if m is None or m.inliers <= self.chance or m.row is None:
                continue
            ref = self.rec.index.records[m.row].path
            shifted = m.__class__(
                m.inliers, m.query_xy + np.array(offset, np.float32), m.ref_xy, m.row
            )
            o = outline(shifted, (self.img.width, self.img.height), photo_size(ref, self.side))
            if o is not None:
                got.append((c.landmark.id, o))
        return got

    def geometric(self, landmark_id: str, refs: list[int] | None = None) -> Outline | None:
        """``landmark_id``'s outline from its most similar reference photos (``refs``, e.g.
        a recognition's evidence rows, when known) matched against the whole photo, or None
        when none matches beyond chance."""
        rec, index = self.rec, self.rec.index
        if refs is None:  # not searched yet: its references ranked by the whole photo
            rows = np.array(
                [i for i, r in enumerate(index.records) if r.landmark_id == landmark_id]
            )
            if len(rows):
                sims = index.project(index.descriptors[rows]) @ rec.describe(self.img)
                refs = rows[np.argsort(-sims)[: rec.verify_config.refs]].tolist()
        whole = (0, 0, self.img.width, self.img.height)
        kp = self.keypoints(whole) if self.verify and refs else None
        if kp is None:
            return None
        matcher = Matcher(kp, index.local, rec.verify_config.ratio)
        m = max((matcher(int(r)) for r in refs), key=lambda m: m.inliers)
        if m.inliers <= self.chance or m.row is None:
            return None
        return outline(m, self.img.size, photo_size(index.records[m.row].path, self.side))

    def confirm(self, lid: str, o: Outline) -> FoundLandmark | None:
        """The landmark, when its located region, decided on its own, names it confidently."""
        rr = self.decide(o.box)
        if rr is None or rr.status == "unknown" or not rr.candidates:
            return None
        if rr.candidates[0].landmark.id != lid:
            return None
        return FoundLandmark(
            rr.candidates[0].landmark,
            rr.confidence,
            o.box,
            o.polygon_list(),
            o.source,
            o.inliers,
            rr.candidates[0].reference,
            rr.candidates[0].score,
        )


def find_landmarks(
    recognizer: Recognizer,
    image: Image.Image,
    name: str = "",
    max_landmarks: int = MAX_LANDMARKS,
    dense: Dense | None = None,
    whole: Recognition | None = None,
    recognized: Image.Image | None = None,
) -> LandmarksResult:
    """Every landmark in ``image`` (an upright RGB photo, e.g. from :func:`load_image`), best
    first; boxes and polygons in its pixels. The search works on the photo at
    ``recognizer.load_side``, as recognition does, and cuts regions from it at up to
    :data:`SOURCE_SIDE`. ``dense``: the dense search, which places a landmark recognized
    without a geometric match, and proposes regions to re-decide in a photo not recognized as
    a whole. ``whole``: the photo's recognition when already made, so that it is not computed
    twice, on ``recognized`` (the photo as decoded for ``Recognizer.recognize``; default:
    ``image`` at ``load_side``)."""
    t0 = time.perf_counter()
    full = image.convert("RGB")
    img = downscale(full, recognizer.load_side)
    if recognized is not None and max(recognized.size) <= recognizer.load_side:
        img = recognized.convert("RGB")
    elif img is not full:
        whole = None  # recognized at another size: its keypoints would not fit
    if whole is not None and _verifies(recognizer) and not whole.verified:
        whole = None  # recognized without verification: decide again
    s = _Search(recognizer, img, downscale(full, SOURCE_SIDE), dense)
    if whole is None:
        whole = s.decide((0, 0, img.width, img.height))
    result = LandmarksResult(name, [], whole, size=full.size)
    if whole is None or not whole.candidates:
        result.seconds = time.perf_counter() - t0
        return result
    found: list[FoundLandmark] = []
    top = whole.candidates[0].landmark.id if whole.status != "unknown" else None
    # strongest geometric match first: the top candidate may be a landmark seen in part
    for lid, o in sorted(s.outlines(whole, (0, 0)), key=lambda t: -t[1].inliers):
        if len(found) >= max_landmarks or any(_overlap(o.box, f.box) > 0.5 for f in found):
            continue
        if lid == top and not found:  # named by the whole photo: the outline says where
            f = _outlined(whole.candidates[0], whole.confidence, o)
        else:  # named by its region's own decision
            f = s.confirm(lid, o)
        if f is not None:  # a geometric outline competes with the dense search's boxes
            found.append(_settle(s, f))
    if not found and top is not None and whole.verification_skipped:
        # certain without verification: geometry still says where, for one matching of the
        # references the search already ranked (no second description of the photo)
        ev = whole.evidence
        o = s.geometric(top, [row for row, _ in ev.refs] if ev is not None else None)
        if o is not None:
            found.append(_settle(s, _outlined(whole.candidates[0], whole.confidence, o)))
    if not found and top is not None:  # recognized, but no geometric match: dense search
        c = whole.candidates[0]
        full_box = (0, 0, img.width, img.height)
        b, score, how = full_box, c.score, "window"
        if dense is not None:
            (b, score), how = s.box(c.landmark.id), "dense"
        conf = whole.confidence
        found.append(FoundLandmark(c.landmark, conf, b, corners(b), how, None, c.reference, score))
    if not found:  # not recognized as a whole: landmarks among clutter?
        found = _crowded(s)[:max_landmarks]
    while found and len(found) < max_landmarks:
        new = _next(s, found)
        if not new:
            break
        found += new[: max_landmarks - len(found)]
    k = full.width / img.width
    if k != 1.0:
        found = [f.scaled(k, full.size) for f in found]
    result.landmarks = sorted(found, key=lambda f: -f.confidence)
    result.seconds = time.perf_counter() - t0
    return result


def _outlined(c: Candidate, confidence: float, o: Outline) -> FoundLandmark:
    """Candidate ``c`` found where the geometric outline ``o`` is."""
    poly = o.polygon_list()
    return FoundLandmark(
        c.landmark, confidence, o.box, poly, o.source, o.inliers, c.reference, c.score
    )


def _settle(s: _Search, f: FoundLandmark) -> FoundLandmark:
    """``f``'s geometric box, or the dense search's box when its crop is more like the
    landmark's references. The homography places the *reference photo's* frame (or its
    inliers' hull), which may show more or less of the landmark's setting than this photo
    does: on composites of held-out photos the crop similarity picked the better box."""
    x0, y0, x1, y1 = f.box
    if s.dense is None or (x1 - x0) * (y1 - y0) >= FILLS * s.img.width * s.img.height:
        return f  # the landmark fills the photo: nothing for the crops to improve on
    b, score = s.box(f.landmark.id, [f.box])
    if b == f.box:
        return replace(f, score=score)
    return replace(f, box=b, polygon=corners(b), located_by="dense", score=score)


def _next(s: _Search, found: list[FoundLandmark]) -> list[FoundLandmark]:
    """Further landmarks in the strips of the photo outside the found ones (none: the
    evidence ran out): matched geometrically there and confirmed by its region, or else the
    strip itself recognized (calibrated, with its own keypoints) as a landmark not found yet,
    placed within it, or else those of the largest strip's regions and windows."""
    size = (s.img.width, s.img.height)
    boxes = [_widen(f.box, size) for f in found]
    ids = {f.landmark.id for f in found}
    strips = _strips(size, boxes)
    for strip in strips:
        r = s.region(strip, boxes)
        if r is None:
            continue
        for lid, o in s.outlines(r, (strip[0], strip[1])):
            if lid in ids or any(_overlap(o.box, b) > 0.5 for b in boxes):
                continue
            f = s.confirm(lid, o)
            if f is not None:
                return [_settle(s, f)]
        if _supported(r) and r.landmark is not None and r.landmark.id not in ids:
            c = r.candidates[0]
            if s.dense is None:
                b, score, how = strip, c.score, "window"
            else:
                (b, score), how = s.box(c.landmark.id, [strip]), "dense"
            return [
                FoundLandmark(
                    c.landmark, r.confidence, b, corners(b), how, c.inliers, c.reference, score
                )
            ]
    # a landmark small in the largest strip: its regions and windows, as for a crowded photo
    return _crowded(s, strips[0], ids, boxes) if strips else []


def windows_of(region: BoxI, sizes: tuple[tuple[float, int], ...] = WINDOWS) -> list[BoxI]:
    """Crops of ``region`` at a few sizes and positions (half-overlapping), largest first."""
    w, h = region[2] - region[0], region[3] - region[1]
    out = []
    for frac, n in sizes:
        cw, ch = round(w * frac), round(h * frac)
        for y in np.linspace(0, h - ch, n) + region[1]:
            for x in np.linspace(0, w - cw, n) + region[0]:
                out.append((int(x), int(y), int(x) + cw, int(y) + ch))
    return out


def _crowded(
    s: _Search,
    region: BoxI | None = None,
    ids: set[str] | frozenset[str] = frozenset(),
    exclude: list[BoxI] | None = None,
) -> list[FoundLandmark]:
    """Landmarks among clutter, which the whole photo's (or ``region``'s) descriptor does not
    name, best first; ``ids``: landmarks found already, ``exclude``: their boxes.

    Two sources of crops to recognize as photos of their own (own keypoints, verification):
    the most confident regions of the two best landmarks, pooled from one feature map (on 50
    held-out composites, right landmark 0.76 -> 0.84; 0.66 -> 0.82 on 50 others); and, only
    when no region gave a supported answer but the best was at least :data:`WINDOWS_AFTER`
    confident, windows of the region, each described by its own network pass (without them,
    0.74 on both sets, measured with regions at 2 times the input size). Every supported
    answer of a source counts, each a different landmark (the two best regions of two photos
    side by side are often both; the second was dropped: now 2 more of 60 pair photos found,
    none wrong), placed by the geometry inside its crop when there is a match, else by the
    dense search (or the window); a box mostly inside a more confident one's is dropped.
    """
    whole = (0, 0, s.img.width, s.img.height)

    def regions() -> list[tuple[float, BoxI]] | None:
        """The best regions, or None when there is no feature map to pool them from."""
        if s.dense is None:
            return None
        try:
            return _regions(s, region or whole, ids, exclude or [])[:CROWDED_WINDOWS]
        except DenseUnsupported:  # a backbone with no feature map: the windows still work
            return None

    def windows() -> list[tuple[float, BoxI]]:
        scored = []
        for box in windows_of(whole) if region is None else windows_of(region, STRIP_WINDOWS):
            r = s.decide(box, local=False)
            if r is not None and r.candidates and r.candidates[0].landmark.id not in ids:
                scored.append((r.confidence, box))
        return sorted(scored, key=lambda t: -t[0])[:CROWDED_WINDOWS]

    def supported(
        proposals: list[tuple[float, BoxI]],
    ) -> list[tuple[float, BoxI, Recognition]]:
        got: dict[str, tuple[float, BoxI, Recognition]] = {}
        for conf, box in proposals:
            if conf < WINDOW_MIN_CONFIDENCE:
                break
            rr = s.region(box, exclude)
            if rr is None or not _supported(rr) or rr.landmark is None or rr.landmark.id in ids:
                continue
            lid = rr.landmark.id
            if lid not in got or rr.confidence > got[lid][0]:
                got[lid] = (rr.confidence, box, rr)
        return sorted(got.values(), key=lambda t: -t[0])

    proposed = regions()
    answers = supported(proposed or [])
    # the windows only when no region was supported, and some region looked like a landmark
    if not answers and (proposed is None or (proposed and proposed[0][0] >= WINDOWS_AFTER)):
        answers = supported(windows())
    out: list[FoundLandmark] = []
    for conf, box, rr in answers:
        f = _placed(s, conf, box, rr)
        if not any(_overlap(f.box, o.box) > 0.5 for o in out):
            out.append(f)
    return out


def _placed(s: _Search, conf: float, box: BoxI, rr: Recognition) -> FoundLandmark:
    """The landmark ``rr`` recognized in the crop ``box``: placed by the geometry inside the
    crop when there is a match, else by the dense search (or the crop itself)."""
    c = rr.candidates[0]
    for lid, o in s.outlines(rr, (box[0], box[1])):
        if lid == c.landmark.id:
            return _settle(s, _outlined(c, conf, o))
    if s.dense is None:
        return FoundLandmark(c.landmark, conf, box, corners(box), "window", c.inliers, c.reference)
    b, score = s.box(c.landmark.id, [box])
    return FoundLandmark(c.landmark, conf, b, corners(b), "dense", c.inliers, c.reference, score)


def _regions(
    s: _Search, region: BoxI, ids: set[str] | frozenset[str], exclude: list[BoxI]
) -> list[tuple[float, BoxI]]:
    """The most confident region of each landmark not in ``ids``, best first: regions of the
    photo inside ``region`` and mostly clear of ``exclude``, described from one feature map
    (``dense.regions``) and decided on their global descriptors."""
    boxes, z = s.regions()
    keep = [
        i
        for i, b in enumerate(boxes)
        if b[0] >= region[0]
        and b[1] >= region[1]
        and b[2] <= region[2]
        and b[3] <= region[3]
        and not any(_overlap(b, e) > 0.5 for e in exclude)
    ]
    best: dict[str, tuple[float, BoxI]] = {}
    for i, r in zip(keep, s.rec.decide_each(z[keep], REGION_RERANK), strict=True):
        b = boxes[i]
        if not r.candidates:
            continue
        lid = r.candidates[0].landmark.id
        if lid not in ids and (lid not in best or r.confidence > best[lid][0]):
            best[lid] = (r.confidence, b)
    return sorted(best.values(), key=lambda t: -t[0])


def _supported(r: Recognition) -> bool:
    """``r`` recognized a landmark with geometric support (see MIN_REGION_INLIERS)."""
    if r.status != "recognized" or not r.candidates:
        return False
    n = r.candidates[0].inliers
    return n is None or n >= MIN_REGION_INLIERS


def _overlap(a: BoxI, b: BoxI) -> float:
    """Share of ``a`` inside ``b``."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = max(1, (a[2] - a[0]) * (a[3] - a[1]))
    return ix * iy / area


def corners(b: BoxI) -> list[list[float]]:
    """A box as a 4-point polygon, clockwise from the top left."""
    return [[float(b[0]), float(b[1])], [float(b[2]), float(b[1])]] + [
        [float(b[2]), float(b[3])],
        [float(b[0]), float(b[3])],
    ]


def downscale(img: Image.Image, side: int) -> Image.Image:
    """``img`` with its long side at most ``side`` (itself when it already is)."""
    if max(img.size) <= side:
        return img
    s = side / max(img.size)
    size = (max(1, round(img.width * s)), max(1, round(img.height * s)))
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def locate_geometric(recognizer: Recognizer, image: Image.Image, landmark_id: str):
    """``landmark_id`` located by geometry alone: its most similar reference photos matched
    against the photo; the :class:`FoundLandmark` in ``image``'s pixels, or None when no
    reference matches beyond chance (then only the dense search can say where)."""
    full = image.convert("RGB")
    img = downscale(full, recognizer.load_side)
    s = _Search(recognizer, img, downscale(full, SOURCE_SIDE))
    o = s.geometric(landmark_id)
    if o is None:
        return None
    lm = recognizer.index.catalog[landmark_id]
    f = FoundLandmark(lm, 0.0, o.box, o.polygon_list(), o.source, o.inliers, "", 0.0)
    rr = s.decide(o.box, [])
    if rr is not None:
        lid_score = {c.landmark.id: c for c in rr.candidates}
        if landmark_id in lid_score:
            f.score = lid_score[landmark_id].score
        if rr.candidates and rr.candidates[0].landmark.id == landmark_id:
            f.confidence = rr.confidence
    k = full.width / img.width
    return f.scaled(k, full.size) if k != 1.0 else f

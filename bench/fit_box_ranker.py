"""Fit the box ranking (``landmark_finder.explain.boxrank``) on an index's own gallery.

    python bench/fit_box_ranker.py --index out/indian-index \
        --distractors ../shared/landmarks/distractors --cache searches.npz
    python bench/fit_box_ranker.py ... --out my-ranker.npz      # default: the packaged file

Training photos are composites of the gallery's own photos, made as ``bench/locate.py`` makes
its test composites (one photo at 35-70 % of a photo of no landmark's width; two photos side by
side): the dense search scores its crops for the pasted landmark with the pasted photo (and
its augmented variants) left out of the references, and every crop's IoU with the pasted
rectangle is what the trees learn to predict. A fifth of the composites are held out: the
report says how often the crop with the highest predicted IoU, and the best-scoring one, has
IoU >= 0.5 there. About 0.6 s per composite on 2 cores.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np


def _refs_without(index, families: np.ndarray, landmark_id: str, left_out: set[int]):
    from landmark_finder.explain.dense import LandmarkRefs

    rows = [
        i
        for i, r in enumerate(index.records)
        if r.landmark_id == landmark_id and int(families[i]) not in left_out
    ]
    vecs = np.asarray(index.project(index.descriptors[rows]), np.float32)
    return LandmarkRefs(landmark_id, landmark_id, vecs)


def composites(index, distractors: list[Path], singles: int, pairs: int, seed: int):
    """(image, [(landmark id, truth box, index row)]) of single and paired gallery photos."""
    from landmark_finder.core.images import load_image
    from landmark_finder.explain.composites import paste, paste_pair

    rng = random.Random(seed)
    rows = list(range(len(index.records)))
    for n in range(singles + pairs):
        a = rng.choice(rows)
        bg = load_image(rng.choice(distractors), 512)
        pa = index.records[a]
        if n < singles:
            c = paste(load_image(pa.path, 512), bg, rng, pa.landmark_id)
            yield c.image, [(pa.landmark_id, c.box, a)]
            continue
        b = rng.choice([r for r in rows if index.records[r].landmark_id != pa.landmark_id])
        pb = index.records[b]
        bg = bg.resize((max(bg.width, 640), round(max(bg.width, 640) * 9 / 16)))
        ids = (pa.landmark_id, pb.landmark_id)
        c = paste_pair(load_image(pa.path, 512), load_image(pb.path, 512), bg, rng, ids)
        yield c.image, list(zip(c.landmark_ids, c.boxes, (a, b), strict=True))


def _save(path: Path, searches: list) -> None:
    """The raw searches (crops, scores, evidence), so features can change without a rerun."""
    arrays = {}
    for i, (got, truth) in enumerate(searches):
        arrays[f"b{i}"] = np.asarray(got.boxes, np.float64)
        arrays[f"s{i}"] = np.asarray(got.scores, np.float64)
        arrays[f"e{i}"] = got.evidence
        arrays[f"m{i}"] = np.array([*got.size, got.scale, got.cell, *truth], np.float64)
    np.savez_compressed(path, **arrays)


def _load(path: Path) -> list:
    from landmark_finder.explain.locate import CropSearch

    out = []
    with np.load(path, allow_pickle=False) as z:
        for i in range(sum(k.startswith("m") for k in z.files)):
            m = z[f"m{i}"]
            boxes = [tuple(b) for b in z[f"b{i}"].tolist()]
            size, scale, cell = (int(m[0]), int(m[1])), float(m[2]), int(m[3])
            got = CropSearch(boxes, z[f"s{i}"].tolist(), z[f"e{i}"], size, scale, cell)
            out.append((got, tuple(m[4:8].tolist())))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--distractors", type=Path, required=True, help="photos of no landmark")
    ap.add_argument("--singles", type=int, default=400)
    ap.add_argument("--pairs", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trees", type=int, default=150)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="raw searches: written, then reused")
    args = ap.parse_args(argv)

    from landmark_finder.core.images import iter_image_files
    from landmark_finder.explain.boxrank import DEFAULT_PATH, fit
    from landmark_finder.explain.composites import iou
    from landmark_finder.explain.locate import search_crops
    from landmark_finder.recognition.index import Index
    from landmark_finder.recognition.recognizer import Recognizer, extractor_for

    searches = _load(args.cache) if args.cache and args.cache.exists() else []
    if not searches:
        index = Index.open(args.index)
        rec = Recognizer(index, extractor_for(index))
        families = index.photo_families()
        distractors = sorted(iter_image_files(args.distractors))
        t0 = time.perf_counter()
        for image, pasted in composites(index, distractors, args.singles, args.pairs, args.seed):
            left_out = {int(families[row]) for _, _, row in pasted}
            for lid, truth, _ in pasted:
                got = search_crops(rec, image, _refs_without(index, families, lid, left_out))
                searches.append((got, truth))
            if len(searches) % 50 == 0:
                print(f"{len(searches)} searched, {time.perf_counter() - t0:.0f} s", flush=True)
        if args.cache:
            _save(args.cache, searches)
    searched = []
    for got, truth in searches:
        k = got.scale
        ious = [iou((b[0] * k, b[1] * k, b[2] * k, b[3] * k), truth) for b in got.boxes]
        searched.append((got.features(), np.array(ious)))
    order = np.random.default_rng(args.seed).permutation(len(searched))
    held = set(order[: len(searched) // 5].tolist())
    train = [s for i, s in enumerate(searched) if i not in held]
    ranker = fit(
        np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), args.trees
    )
    test = [s for i, s in enumerate(searched) if i in held]
    ranked = np.mean([y[int(np.argmax(ranker.predict(x)))] >= 0.5 for x, y in test])
    best = np.mean([y[int(np.argmax(x[:, 0]))] >= 0.5 for x, y in test])
    reach = np.mean([y.max() >= 0.5 for _, y in test])
    # the figures above are for a ranking fitted without the held-out fifth; the one saved is
    # fitted on every composite
    everything = np.concatenate([x for x, _ in searched]), np.concatenate([y for _, y in searched])
    out = fit(*everything, args.trees).save(args.out or DEFAULT_PATH)
    print(
        f"{len(searched)} landmarks in composites, {len(test)} held out: IoU >= 0.5 for the "
        f"ranked crop {ranked:.3f}, the best-scoring crop {best:.3f}, any crop scored "
        f"{reach:.3f}; written {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

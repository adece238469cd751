"""Benchmark of ``locate`` and heatmaps on the Indian-monuments index.

    python bench/locate.py --shared ../shared/landmarks --out bench/locate_results.md
    python bench/locate.py --index out/indian-index      # reuse an index of the gallery

Composites with a known answer (:mod:`landmark_finder.explain.composites`): a landmark photo pasted
at a random place and size (35–70 % of the background's width) into an everyday photo from
``distractors/``. Two sets: photos from the gallery itself (as the issue's acceptance test
asks; the pasted photo is also a reference) and held-out photos from ``queries/`` (harder:
the landmark must be found from *other* photos of it). For each composite: the best box's IoU
with the pasted rectangle when the landmark is given and when it is left to the recognizer,
whether the right landmark was picked, seconds per photo, and whether the heatmap is hotter
inside the pasted photo than outside. Plain query photos give the time per ordinary photo.
Timing lives here, never in unit tests; the machine's load average is recorded with it.

Every landmark of a photo (``locate`` without a landmark, ``recognize --all``): two further
sets. *Pairs*: two held-out photos of different landmarks pasted side by side (each at 35-48 %
of the width, one per half) into a distractor photo widened to 16:9; both must be found, each
box with IoU >= 0.5. *Distractors*: every plain photo of ``distractors/``; no landmark may be
reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def composites(files: list[Path], distractors: list[Path], n: int, seed: int):
    from landmark_finder.core.images import load_image
    from landmark_finder.explain.composites import paste

    rng = random.Random(seed)
    for _ in range(n):
        photo, background = rng.choice(files), rng.choice(distractors)
        yield paste(load_image(photo, 512), load_image(background, 512), rng, photo.parent.name)


def measure_pairs(rec, files: list[Path], distractors: list[Path], n: int, seed: int) -> dict:
    from landmark_finder.core.images import load_image
    from landmark_finder.explain.composites import iou, paste_pair
    from landmark_finder.explain.locate import locate

    rng = random.Random(seed)
    both, one, secs, extra, ideal = [], [], [], [], []
    for _ in range(n):
        a = rng.choice(files)
        b = rng.choice([f for f in files if f.parent.name != a.parent.name])
        bg = load_image(rng.choice(distractors), 512)
        bg = bg.resize((max(bg.width, 640), round(max(bg.width, 640) * 9 / 16)))
        c = paste_pair(
            load_image(a, 512), load_image(b, 512), bg, rng, (a.parent.name, b.parent.name)
        )
        r = locate(rec, c.image)
        secs.append(r.seconds)
        got = {f.landmark.id: f.box for f in r.landmarks}
        ok = [
            k in got and iou(got[k], box) >= 0.5
            for k, box in zip(c.landmark_ids, c.boxes, strict=True)
        ]
        both.append(all(ok))
        one.append(any(ok))
        pasted = zip(c.landmark_ids, c.boxes, strict=True)
        ideal.append(all(_pasted_recognized(rec, c.image, k, box) for k, box in pasted))
        extra.append(len(set(got) - set(c.landmark_ids)))
    return {
        "n": n,
        "both_found_iou50": round(float(np.mean(both)), 3),
        "at_least_one_iou50": round(float(np.mean(one)), 3),
        "wrong_landmarks_per_photo": round(float(np.mean(extra)), 3),
        "both_pasted_recognized": round(float(np.mean(ideal)), 3),
        "s_median": round(float(np.median(secs)), 3),
        "s_p90": round(float(np.percentile(secs, 90)), 3),
    }


def _pasted_recognized(rec, image, landmark_id: str, box) -> bool:
    """Whether the pasted photo, cut out of the composite exactly, is recognized as its
    landmark: the ceiling of any search for it (recognition of a small held-out photo)."""
    r = rec.recognize(image.crop(tuple(box)))
    return r.status == "recognized" and r.landmark is not None and r.landmark.id == landmark_id


def measure_distractors(rec, distractors: list[Path]) -> dict:
    from landmark_finder.core.images import load_image
    from landmark_finder.explain.locate import locate

    none, secs = [], []
    for p in distractors:
        r = locate(rec, load_image(p))
        none.append(not r.landmarks and not r.boxes)
        secs.append(r.seconds)
    return {
        "n": len(none),
        "no_landmark": round(float(np.mean(none)), 3),
        "s_median": round(float(np.median(secs)), 3),
    }


def measure(rec, comps, heat: bool = True) -> dict:
    from landmark_finder.explain.composites import iou
    from landmark_finder.explain.heatmaps import heatmap
    from landmark_finder.explain.locate import locate

    given, auto, right, secs, secs_auto, hot, mass, nboxes = [], [], [], [], [], [], [], []
    ideal = []
    for c in comps:
        r = locate(rec, c.image, c.landmark_id)
        given.append(iou(r.boxes[0].xyxy, c.box))
        secs.append(r.seconds)
        nboxes.append(len(r.boxes))
        a = locate(rec, c.image)
        auto.append(iou(a.boxes[0].xyxy, c.box) if a.boxes else 0.0)
        right.append(a.landmark_id == c.landmark_id)
        ideal.append(_pasted_recognized(rec, c.image, c.landmark_id, c.box))
        secs_auto.append(a.seconds)
        if not heat:
            continue
        h = heatmap(rec, c.image, c.landmark_id)
        inside = np.zeros(h.values.shape, bool)
        x0, y0, x1, y1 = c.box
        inside[y0:y1, x0:x1] = True
        hot.append(float(h.values[inside].mean()) > float(h.values[~inside].mean()))
        mass.append(float(h.values[inside].sum() / max(h.values.sum(), 1e-12)))
    g, a = np.array(given), np.array(auto)
    return {
        "n": len(g),
        "iou50_given": round(float((g >= 0.5).mean()), 3),
        "mean_iou_given": round(float(g.mean()), 3),
        "iou50_auto": round(float((a >= 0.5).mean()), 3),
        "mean_iou_auto": round(float(a.mean()), 3),
        "landmark_right_auto": round(float(np.mean(right)), 3),
        "pasted_recognized": round(float(np.mean(ideal)), 3),
        "s_median_given": round(float(np.median(secs)), 3),
        "s_p90_given": round(float(np.percentile(secs, 90)), 3),
        "s_median_auto": round(float(np.median(secs_auto)), 3),
        "s_p90_auto": round(float(np.percentile(secs_auto, 90)), 3),
        "mean_boxes": round(float(np.mean(nboxes)), 2),
        "heat_hotter_inside": round(float(np.mean(hot)), 3) if hot else "-",
        "heat_mass_inside": round(float(np.mean(mass)), 3) if mass else "-",
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shared", type=Path, default=Path("../shared/landmarks"))
    ap.add_argument(
        "--index", type=Path, help="existing index of indian-monuments/gallery (default: build one)"
    )
    ap.add_argument("--n", type=int, default=100, help="composites per set")
    ap.add_argument("--plain", type=int, default=60, help="plain query photos timed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=100, help="two-landmark composites")
    ap.add_argument("--no-heatmaps", action="store_true", help="skip the heatmap figures")
    ap.add_argument(
        "--held-out-only", action="store_true", help="composites of held-out photos only"
    )
    ap.add_argument("--out", type=Path, default=Path("bench/locate_results.md"))
    args = ap.parse_args()

    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.core.images import iter_image_files, load_image
    from landmark_finder.explain.locate import locate
    from landmark_finder.recognition.indexing import IndexConfig, build_index
    from landmark_finder.recognition.recognizer import Recognizer

    im = args.shared / "indian-monuments"
    distractors = iter_image_files(args.shared / "distractors")
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index
        if index_dir is None:
            index_dir = Path(tmp) / "index"
            build_index(
                im / "gallery",
                index_dir,
                load_catalog(im / "catalog.csv"),
                IndexConfig("efficientnet-lite2"),
            )
        rec = Recognizer.open(index_dir)
        locate(rec, load_image(distractors[0], 512))  # load the model and export its graph once
        rows = []
        sets = [("gallery photos", im / "gallery"), ("held-out query photos", im / "queries")]
        for name, folder in sets[1:] if args.held_out_only else sets:
            files = iter_image_files(folder)
            load0 = os.getloadavg()[0]
            row = {
                "set": name,
                **measure(
                    rec, composites(files, distractors, args.n, args.seed), not args.no_heatmaps
                ),
                "load_avg": round(load0, 1),
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
        queries = iter_image_files(im / "queries")
        load0 = os.getloadavg()[0]
        pairs = {
            **measure_pairs(rec, queries, distractors, args.pairs, args.seed),
            "load_avg": round(load0, 1),
        }
        print(json.dumps(pairs), file=sys.stderr)
        load0 = os.getloadavg()[0]
        plain_dis = {**measure_distractors(rec, distractors), "load_avg": round(load0, 1)}
        print(json.dumps(plain_dis), file=sys.stderr)
        rng = random.Random(args.seed)
        plain = []
        load0 = os.getloadavg()[0]
        for p in rng.sample(queries, min(args.plain, len(queries))):
            plain.append(locate(rec, load_image(p)).seconds)
        timing = {
            "plain_photos": len(plain),
            "s_median": round(float(np.median(plain)), 3),
            "s_p90": round(float(np.percentile(plain, 90)), 3),
            "s_max": round(float(np.max(plain)), 3),
            "load_avg": round(load0, 1),
        }
        print(json.dumps(timing), file=sys.stderr)

    cols = [
        "set",
        "n",
        "iou50_given",
        "mean_iou_given",
        "iou50_auto",
        "mean_iou_auto",
        "landmark_right_auto",
        "pasted_recognized",
        "s_median_given",
        "s_p90_given",
        "s_median_auto",
        "s_p90_auto",
        "mean_boxes",
        "heat_hotter_inside",
        "heat_mass_inside",
        "load_avg",
    ]
    lines = [
        f"# locate / heatmap benchmark ({time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()})",
        "",
        "Command: `python bench/locate.py " + " ".join(sys.argv[1:]) + "`",
        "",
        f"Index: indian-monuments gallery, {rec.index.backbone} at "
        f"{rec.index.preprocessing.size} px, "
        f"{len(rec.index.records)} photos. Composites: a photo pasted at 35-70 % of the "
        "background's width into a distractor photo; IoU of the best box with the pasted "
        "rectangle. `given` = landmark id passed in; `auto` = chosen by the recognizer; "
        "`pasted_recognized`: the pasted photo, cut out exactly, recognized as its landmark "
        "(the ceiling of `landmark_right_auto`).",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in rows:
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    lines += [
        "",
        f"Plain query photos (landmark recognized automatically, full-size photos): "
        f"{timing['plain_photos']} photos, median {timing['s_median']} s, "
        f"p90 {timing['s_p90']} s, max {timing['s_max']} s per photo "
        f"(load average {timing['load_avg']} when started).",
        "",
        f"Two held-out photos of different landmarks side by side ({pairs['n']} composites): "
        f"both found with box IoU >= 0.5 in {pairs['both_found_iou50']}, at least one in "
        f"{pairs['at_least_one_iou50']}; {pairs['wrong_landmarks_per_photo']} wrong landmarks "
        f"per photo (both pasted photos, cut out exactly, recognized: "
        f"{pairs['both_pasted_recognized']}); median {pairs['s_median']} s, p90 {pairs['s_p90']} s "
        f"(load average {pairs['load_avg']}).",
        "",
        f"Plain distractor photos ({plain_dis['n']}): no landmark reported in "
        f"{plain_dis['no_landmark']}; median {plain_dis['s_median']} s "
        f"(load average {plain_dis['load_avg']}).",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {"composites": rows, "plain": timing, "pairs": pairs, "distractors": plain_dis},
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

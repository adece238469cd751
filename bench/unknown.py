"""Small-gallery "unknown" benchmark: does a 5-landmark gallery reject what is no landmark?

    python bench/unknown.py --shared ../shared/landmarks --out bench/unknown_results.md

Builds an index of the first 10 gallery photos of 5 Indian-monuments landmarks (default
backbone, SIFT verification) twice: with the built-in non-landmark negatives in its calibration
(the default) and without. Each answers blank, noise, gradient, 1x1 and transparent pictures
(drawn here), the 125 everyday COCO photos of ``distractors/``, and the 5 landmarks' held-out
query photos. Writes the share of "unknown" answers and of held-out queries recognized right.
Content checks run in both (they are not part of the index).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

LANDMARKS = ["taj_mahal", "charminar", "india_gate", "golden_temple", "hawa_mahal"]


def hostile() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    out = {}

    def png(im: Image.Image) -> bytes:
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return buf.getvalue()

    colours = {"black": 0, "white": 255, "grey": 128, "red": (220, 20, 20), "sky": (135, 206, 235)}
    for name, c in colours.items():
        out[name] = png(Image.new("RGB", (640, 480), c if isinstance(c, tuple) else (c, c, c)))
    out["noise"] = png(Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)))
    ramp = np.linspace(0, 255, 640)[None, :, None] * np.ones((480, 1, 3))
    ramp[..., 2] = 255 - ramp[..., 2]
    out["gradient"] = png(Image.fromarray(ramp.astype(np.uint8)))
    out["1x1"] = png(Image.new("RGB", (1, 1), (90, 120, 200)))
    out["transparent"] = png(Image.new("RGBA", (300, 200), (0, 0, 0, 0)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shared", type=Path, default=Path("../shared/landmarks"))
    ap.add_argument("--out", type=Path, default=Path("bench/unknown_results.md"))
    ap.add_argument("--photos", type=int, default=10, help="gallery photos per landmark")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.core.images import iter_image_files
    from landmark_finder.recognition.indexing import build_index
    from landmark_finder.recognition.recognizer import Recognizer

    indian = args.shared / "indian-monuments"
    tmp = Path(tempfile.mkdtemp(prefix="lf-unknown-"))
    gallery = tmp / "gallery"
    for lid in LANDMARKS:
        (gallery / lid).mkdir(parents=True)
        for p in sorted((indian / "gallery" / lid).glob("*.jpg"))[: args.photos]:
            (gallery / lid / p.name).symlink_to(p.resolve())
    distractors = iter_image_files(args.shared / "distractors")
    queries = [p for lid in LANDMARKS for p in sorted((indian / "queries" / lid).glob("*.jpg"))]
    rows, figures = [], {}
    for label, negatives in (("built-in negatives (default)", True), ("gallery only", False)):
        t0 = time.perf_counter()
        _, report = build_index(
            gallery,
            tmp / f"idx-{negatives}",
            load_catalog(indian / "catalog.csv"),
            negatives=negatives,
        )
        build_s = time.perf_counter() - t0
        rec = Recognizer.open(tmp / f"idx-{negatives}")
        drawn = [rec.recognize(b, name=f"{n}.png") for n, b in hostile().items()]
        coco = [rec.recognize(p) for p in distractors]
        known = [(p.parent.name, rec.recognize(p)) for p in queries]
        unknown = sum(r.status == "unknown" for r in drawn + coco)
        right = sum(r.status == "recognized" and r.landmark.id == t for t, r in known)
        wrong = sum(r.status == "recognized" and r.landmark.id != t for t, r in known)
        top1 = sum(bool(r.candidates) and r.candidates[0].landmark.id == t for t, r in known)
        f = {
            "drawn_unknown": sum(r.status == "unknown" for r in drawn),
            "n_drawn": len(drawn),
            "coco_unknown": sum(r.status == "unknown" for r in coco),
            "n_coco": len(coco),
            "unknown_share": unknown / len(drawn + coco),
            "coco_max_confidence": max(r.confidence for r in coco),
            "queries_recognized_right": right,
            "queries_recognized_wrong": wrong,
            "queries_top1": top1,
            "n_queries": len(known),
            "build_seconds": round(build_s, 1),
            "warnings": [w for w in report.warnings if w.startswith("small gallery")],
        }
        figures[label] = f
        rows.append(
            f"| {label} | {f['drawn_unknown']}/{f['n_drawn']} | {f['coco_unknown']}/{f['n_coco']}"
            f" | **{f['unknown_share']:.1%}** | {f['coco_max_confidence']:.2f} | "
            f"{right}/{len(known)} ({right / len(known):.0%}) | {wrong} | {top1}/{len(known)} |"
        )
    load = os.getloadavg()
    md = [
        "# Small-gallery unknown benchmark",
        "",
        f"{len(LANDMARKS)} landmarks × {args.photos} gallery photos ({', '.join(LANDMARKS)}), "
        "EfficientNet-Lite2 at 352 px, SIFT verification. Drawn: black, white, grey, red, "
        "sky-blue, noise, gradient, 1x1, transparent PNG. COCO: `distractors/`. Queries: the "
        "5 landmarks' held-out `queries/` photos.",
        "",
        "| calibration | drawn unknown | COCO unknown | all unknown | COCO max confidence "
        "| queries recognized right | recognized wrong | top-1 |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Machine load average while running: {load[0]:.1f} (2 cores). "
        f"Generated {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
    ]
    args.out.write_text("\n".join(md), "utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(figures, indent=2) + "\n", "utf-8")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

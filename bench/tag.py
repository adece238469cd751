"""Benchmark of ``landmark-finder tag``: photos per second, without and with verification, for
~512-px photos and for 12-megapixel phone-size photos.

    python bench/tag.py --shared ../shared/landmarks --out bench/tag_results.md

Builds an index (the default backbone, EfficientNet-Lite2, with SIFT keypoints) of the first
``--refs`` gallery photos of every Indian-monuments landmark in a temp dir, copies
``--photos`` query photos into a temp library, and makes 12-Mpx versions of them (4000×3000,
upscaled, JPEG quality 90; decoded at reduced size through JPEG draft mode). Each run tags a
fresh library (sidecars written, SQLite record) with one worker per core, through the same
library call as the CLI. Two rates: the whole run (worker start-up included) and the steady
rate (first to last photo). The machine is shared: the load average is recorded with each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from landmark_finder.core.catalog import load_catalog  # noqa: E402
from landmark_finder.core.descriptors import Preprocessing  # noqa: E402
from landmark_finder.library.tagger import TagOptions, tag_library  # noqa: E402
from landmark_finder.recognition.indexing import IndexConfig, build_index  # noqa: E402
from landmark_finder.verify.keypoints import LocalConfig  # noqa: E402


def make_sets(indian: Path, tmp: Path, n: int) -> dict[str, Path]:
    photos = sorted((indian / "queries").rglob("*.jpg"))
    step = max(1, len(photos) // n)
    chosen = photos[::step][:n]
    small, big = tmp / "512px", tmp / "12mpx"
    small.mkdir()
    big.mkdir()
    for i, p in enumerate(chosen):
        shutil.copyfile(p, small / f"{i:04d}.jpg")
        with Image.open(p) as im:
            im = im.convert("RGB")
            size = (4000, 3000) if im.width >= im.height else (3000, 4000)
            im.resize(size, Image.Resampling.BICUBIC).save(big / f"{i:04d}.jpg", quality=90)
    return {"~512 px": small, "12 Mpx": big}


def run(index: Path, photos: Path, verify: bool, workers: int) -> dict:
    lib = photos.with_name(f"{photos.name}-{'v' if verify else 'nv'}")
    shutil.copytree(photos, lib)
    stamps: list[float] = []
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    s = tag_library(
        index,
        [lib],
        opts=TagOptions(verify=verify, workers=workers),
        progress=lambda d, t, w: stamps.append(time.perf_counter()) if d else None,
    )
    total = time.perf_counter() - t0
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else float("nan")
    shutil.rmtree(lib)
    return {
        "photos": s.handled,
        "seconds": round(total, 2),
        "photos_per_s": round(s.handled / total, 2),
        "steady_photos_per_s": round(steady, 2),
        "tagged": s.tagged,
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shared", type=Path, default=Path("../shared/landmarks"))
    ap.add_argument("--out", type=Path, default=Path("bench/tag_results.md"))
    ap.add_argument("--photos", type=int, default=160, help="photos per library")
    ap.add_argument("--refs", type=int, default=12, help="gallery photos per landmark")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    indian = args.shared / "indian-monuments"
    results = []
    with tempfile.TemporaryDirectory(prefix="lf-bench-tag-") as d:
        tmp = Path(d)
        gallery = tmp / "gallery"
        for lm in sorted((indian / "gallery").iterdir()):
            (gallery / lm.name).mkdir(parents=True)
            for p in sorted(lm.glob("*.jpg"))[: args.refs]:
                (gallery / lm.name / p.name).symlink_to(p.resolve())
        index = tmp / "index"
        build_index(
            gallery,
            index,
            load_catalog(indian / "catalog.csv"),
            IndexConfig("efficientnet-lite2", Preprocessing(), local=LocalConfig("sift", 1000)),
        )
        sets = make_sets(indian, tmp, args.photos)
        for label, folder in sets.items():
            for verify in (False, True):
                r = run(index, folder, verify, args.workers)
                r.update(set=label, verify=verify)
                results.append(r)
                print(json.dumps(r), flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    lines = [
        "# `landmark-finder tag` throughput",
        "",
        f"Machine: {machine}; {args.workers} workers; index: EfficientNet-Lite2 + SIFT, "
        f"{args.refs} reference photos per landmark; {args.photos} photos per library; "
        "sidecars written. Shared machine: load average (1 min) before and after each run.",
        "",
        "| photos | verification | photos/s (whole run) | photos/s (steady) | seconds | load |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['set']} | {'on' if r['verify'] else 'off'} | {r['photos_per_s']} | "
            f"{r['steady_photos_per_s']} | {r['seconds']} | "
            f"{r['load_before']} → {r['load_after']} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where a query's time goes: per-stage latency on the Indian-monuments benchmark.

    python bench/latency.py --shared ../shared/landmarks --out bench/latency_results.md

Builds an index of ``indian-monuments/gallery`` (or opens ``--index``), then answers every
photo of ``queries/``, ``unseen/`` and ``distractors/`` in three modes through the library's
own ``evaluate``: global descriptors only, verified always (``always_verify``), and the default
verified mode (verification skipped when the global answer is already certain). For each mode
it prints the mean milliseconds of each stage (decode, network, search, keypoints, matching,
decision; a stage a query skipped counts 0), the p50/p90 of the total, how often verification
ran, and the accuracy figures, so a speed-up can be checked against its cost in accuracy.

It also times one photo as a 12-megapixel JPEG (4000×3000) against the same photo at 512 px
(reduced JPEG decoding), and the network at 1 and 2 ONNX Runtime threads.

Figures depend on the machine's load: the load average is recorded with each table. Run it on
an idle machine for figures to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("decode", "network", "search", "keypoints", "matching", "decision")


def stage_table(outcomes) -> dict:
    rs = [r for _, _, r in outcomes if r.status != "error"]
    total = sorted(r.elapsed_ms for r in rs)
    row = {s: round(statistics.fmean(r.timings.get(s, 0.0) for r in rs), 2) for s in STAGES}
    row["p50"] = round(statistics.median(total), 1)
    row["p90"] = round(total[int(0.9 * (len(total) - 1))], 1)
    row["verified_share"] = round(sum(r.verified for r in rs) / len(rs), 3)
    return row


def time_photo(rec, path: Path, repeats: int) -> dict:
    rec.recognize(path)  # warm the file cache
    rs = [rec.recognize(path) for _ in range(repeats)]
    return {
        "decode": round(statistics.median(r.timings["decode"] for r in rs), 1),
        "total": round(statistics.median(r.elapsed_ms for r in rs), 1),
    }


def big_photo_rows(rec, photo: Path, tmp: Path, repeats: int) -> list[dict]:
    """The same photo as a 12-Mpx phone JPEG and as a 512-px JPEG."""
    from PIL import Image

    from landmark_finder.core.images import load_image

    img = load_image(photo)
    big, small = tmp / "12mpx.jpg", tmp / "512px.jpg"
    img.resize((4000, 3000), Image.Resampling.BICUBIC).save(big, quality=92)
    s = 512 / 4000
    img.resize((512, round(3000 * s)), Image.Resampling.LANCZOS).save(small, quality=92)
    return [
        {"photo": "4000x3000 JPEG (12 Mpx)", **time_photo(rec, big, repeats)},
        {"photo": "512x384 JPEG", **time_photo(rec, small, repeats)},
    ]


def thread_rows(rec, photos: list[Path]) -> list[dict]:
    from landmark_finder.core.images import load_image
    from landmark_finder.recognition.recognizer import extractor_for

    imgs = [load_image(p, max_side=rec.load_side) for p in photos]
    out = []
    for threads in (1, 2):
        ex = extractor_for(rec.index, threads=threads)
        ex.describe(imgs[0])
        ts = []
        for img in imgs:
            t0 = time.perf_counter()
            ex.describe(img)
            ts.append((time.perf_counter() - t0) * 1000)
        out.append({"intra_op_threads": threads, "network_ms_p50": round(statistics.median(ts), 1)})
    return out


def sample_queries(dirs: list[Path], every: int, dest: Path) -> list[Path]:
    """Every ``every``-th photo of each folder, linked under ``dest`` in the same layout (so
    the sub-folder still names the true landmark)."""
    from landmark_finder.core.images import iter_image_files

    out = []
    for i, d in enumerate(dirs):
        root = dest / f"{i}-{d.name}"
        for p in iter_image_files(d)[::every]:
            link = root / p.relative_to(d)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(p.resolve())
        out.append(root)
    return out


def md_table(rows: list[dict]) -> list[str]:
    cols = list(rows[0])
    return [
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
        *("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shared", type=Path, default=Path("../shared/landmarks"))
    ap.add_argument("--out", type=Path, default=Path("bench/latency_results.md"))
    ap.add_argument("--index", type=Path, help="an index of the gallery to use (default: build)")
    ap.add_argument("--modes", default="global,always,default", help="modes to run")
    ap.add_argument("--repeats", type=int, default=15, help="repeats for the 12-Mpx photo")
    ap.add_argument(
        "--every", type=int, default=1, help="use every K-th query photo (a quicker sample)"
    )
    args = ap.parse_args()

    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.recognition.evaluate import collect_queries, evaluate
    from landmark_finder.recognition.indexing import build_index
    from landmark_finder.recognition.recognizer import Recognizer

    im = args.shared / "indian-monuments"
    queries = [im / "queries", im / "unseen", args.shared / "distractors"]
    modes = {
        "global": dict(verify=False),
        "always": dict(verify=True, always_verify=True),
        "default": dict(verify=True),
    }
    rows, extra = [], {}
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        if args.every > 1:
            queries = sample_queries(queries, args.every, tmp / "sample")
        index_dir = args.index
        if index_dir is None:
            index_dir = tmp / "index"
            build_index(im / "gallery", index_dir, load_catalog(im / "catalog.csv"))
        for mode in args.modes.split(","):
            rec = Recognizer.open(index_dir, **modes[mode])
            load0 = os.getloadavg()[0]
            result, details = evaluate(rec, queries)
            row = {
                "mode": mode,
                **stage_table(details.outcomes),
                "top1": round(result.top1_accuracy, 4),
                "gap": round(result.gap, 4),
                "auroc": round(result.auroc, 4),
                "coverage@99": round(result.coverage_at_99_precision, 4),
                "load_avg": f"{load0:.1f}-{os.getloadavg()[0]:.1f}",
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        rec = Recognizer.open(index_dir)
        photo = next(p for p, t in collect_queries([im / "queries"], set(rec.index.landmark_ids)))
        load0 = os.getloadavg()[0]
        extra["big_photo"] = big_photo_rows(rec, photo, tmp, args.repeats)
        extra["big_photo_load"] = f"{load0:.1f}-{os.getloadavg()[0]:.1f}"
        sample = [p for p, _ in collect_queries([im / "queries"], set())][::40]
        load0 = os.getloadavg()[0]
        extra["threads"] = thread_rows(rec, sample)
        extra["threads_load"] = f"{load0:.1f}-{os.getloadavg()[0]:.1f}"
        extra["skip_rule"] = rec.index.verified.skip.to_dict() if rec.index.verified else None

    lines = [
        f"# Latency per stage ({time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()})",
        "",
        "Command: `python bench/latency.py " + " ".join(sys.argv[1:]) + "`",
        "",
        "Mean milliseconds per query and stage (0 when a query skipped the stage), p50/p90 of "
        "the total, the share of queries verified, and accuracy. `load_avg`: 1-minute load "
        "average at the start and end of the run (2 cores: above 2 the figures are inflated).",
        "",
        *md_table(rows),
        "",
        f"Skip rule fitted at index time: `{json.dumps(extra['skip_rule'])}`",
        "",
        f"Same photo, default mode, median of {args.repeats} runs "
        f"(load {extra['big_photo_load']}):",
        "",
        *md_table(extra["big_photo"]),
        "",
        f"Network only, batch 1 (load {extra['threads_load']}):",
        "",
        *md_table(extra["threads"]),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(
        json.dumps({"modes": rows, **extra}, indent=1) + "\n", encoding="utf-8"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

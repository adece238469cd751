"""Benchmark suite: the Indian-monuments recognition benchmark and its few-shot curve.

    python bench/run.py --shared ../shared/landmarks --out bench/results.md

Builds an index of ``indian-monuments/gallery`` with the catalog only (no distractors: every
photo used to evaluate is kept out of calibration), then evaluates on ``queries/``, ``unseen/``
and ``distractors/`` through the same library calls as ``landmark-finder evaluate``. Writes a
Markdown table and a JSON file with every figure; timing lives here, never in unit tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared/landmarks"))
    ap.add_argument("--out", type=Path, default=Path("bench/results.md"))
    ap.add_argument("--backbones", default="efficientnet-lite2",
                    help="comma-separated backbones to benchmark (few-shot curve for the first)")
    ap.add_argument("--few-shot", default="1,3,5,10", help="reference photos per landmark")
    args = ap.parse_args()

    from landmark_finder.catalog import load_catalog
    from landmark_finder.evaluate import evaluate
    from landmark_finder.indexing import build_index
    from landmark_finder.recognizer import Recognizer

    im = args.shared / "indian-monuments"
    queries = [im / "queries", im / "unseen", args.shared / "distractors"]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, bb in enumerate(args.backbones.split(",")):
            t0 = time.perf_counter()
            index, report = build_index(im / "gallery", Path(tmp) / bb, load_catalog(im / "catalog.csv"), bb)
            build_s = time.perf_counter() - t0
            rec = Recognizer.open(Path(tmp) / bb)
            shots: list[int | None] = [None] + ([int(k) for k in args.few_shot.split(",")] if i == 0 else [])
            for k in shots:
                result, details = evaluate(rec, queries, max_refs_per_landmark=k)
                row = {"backbone": bb, "refs_per_landmark": k or "all", **result.to_dict(),
                       "ece": round(details.ece, 4), "answered_precision": round(details.answered_precision, 4),
                       "no_landmark_answered": details.unknown_answered,
                       "index_build_s": round(build_s, 1) if k is None else None}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)

    cols = ["backbone", "refs_per_landmark", "top1_accuracy", "gap", "auroc",
            "coverage_at_99_precision", "ece", "answered_precision", "no_landmark_answered",
            "latency_ms_p50", "n_known", "n_unknown", "index_build_s"]
    lines = [
        f"# Benchmark results ({time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()})", "",
        "Command: `python bench/run.py " + " ".join(sys.argv[1:]) + "`", "",
        "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
    ]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark suite: the Indian-monuments recognition benchmark and its few-shot curve.

    python bench/run.py --shared ../shared/landmarks --out bench/results.md

Builds an index of ``indian-monuments/gallery`` with the catalog only (no distractors: every
photo used to evaluate is kept out of calibration), then evaluates on ``queries/``, ``unseen/``
and ``distractors/`` through the same library calls as ``landmark-finder evaluate``, with and
without geometric verification. Also counts confusions inside a group of look-alike landmarks
(by default the four of the Qutb complex, within 100 m of each other). Writes a Markdown table
and a JSON file with every figure; timing lives here, never in unit tests.
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


def group_confusions(outcomes, group: set[str]) -> int:
    """Queries of a group's landmark whose top candidate is another landmark of the group."""
    n = 0
    for _, truth, r in outcomes:
        top = r.candidates[0].landmark.id if r.candidates else None
        n += truth in group and top in group and top != truth
    return n


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shared", type=Path, default=Path("../shared/landmarks"))
    ap.add_argument("--out", type=Path, default=Path("bench/results.md"))
    ap.add_argument(
        "--backbones",
        default="efficientnet-lite2",
        help="comma-separated backbones to benchmark (few-shot curve for the first)",
    )
    ap.add_argument("--few-shot", default="1,3,5,10", help="reference photos per landmark")
    ap.add_argument(
        "--confusion-group",
        default="qutub_minar,alai_minar,alai_darwaza,iron_pillar",
        help="look-alike landmarks whose confusions with each other are counted",
    )
    args = ap.parse_args()
    group = set(args.confusion_group.split(","))

    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.recognition.evaluate import evaluate
    from landmark_finder.recognition.indexing import IndexConfig, build_index
    from landmark_finder.recognition.recognizer import Recognizer

    im = args.shared / "indian-monuments"
    queries = [im / "queries", im / "unseen", args.shared / "distractors"]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, bb in enumerate(args.backbones.split(",")):
            t0 = time.perf_counter()
            index, report = build_index(
                im / "gallery", Path(tmp) / bb, load_catalog(im / "catalog.csv"), IndexConfig(bb)
            )
            build_s = time.perf_counter() - t0
            shots: list[int | None] = [None] + (
                [int(k) for k in args.few_shot.split(",")] if i == 0 else []
            )
            # off: global only; always: every photo verified; default: verified unless the
            # global answer is already certain (the full gallery only)
            for verify in ("off", "always", "default"):
                rec = Recognizer.open(
                    Path(tmp) / bb, verify=verify != "off", always_verify=verify == "always"
                )
                for k in shots if verify != "default" else [None]:
                    load0 = os.getloadavg()[0]
                    result, details = evaluate(rec, queries, max_refs_per_landmark=k)
                    row = {
                        "backbone": bb,
                        "verify": verify,
                        "refs_per_landmark": k or "all",
                        **result.to_dict(),
                        "ece": round(details.ece, 4),
                        "answered_precision": round(details.answered_precision, 4),
                        "no_landmark_answered": details.unknown_answered,
                        "group_confusions": group_confusions(details.outcomes, group),
                        "load_avg": round(load0, 1),
                        "index_build_s": None if k or verify != "off" else round(build_s, 1),
                    }
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr)

    cols = [
        "backbone",
        "verify",
        "refs_per_landmark",
        "top1_accuracy",
        "gap",
        "auroc",
        "coverage_at_99_precision",
        "ece",
        "answered_precision",
        "no_landmark_answered",
        "group_confusions",
        "latency_ms_p50",
        "load_avg",
        "n_known",
        "n_unknown",
        "index_build_s",
    ]
    lines = [
        f"# Benchmark results ({time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()})",
        "",
        "Command: `python bench/run.py " + " ".join(sys.argv[1:]) + "`",
        "",
        f"`group_confusions`: queries of {', '.join(sorted(group))} answered (top-1) with "
        "another landmark of that group. `index_build_s` includes local features and fitting "
        "the verified model (the same index serves every mode). `verify`: off (global only), "
        "always (every photo verified), default (verified unless the global answer is "
        "already certain).",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in rows:
        lines.append(
            "| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hostile-input benchmark: peak memory and the slowest file over the generated hostile corpus
(tests/hostile_corpus.py, with the big bombs) plus large legitimate photos.

    python bench/hostile.py --shared ../shared/landmarks --out bench/hostile.md [--index DIR]

Measures, on a 5-landmark × 10-photo index (built here with the default backbone unless
--index is given):

* the ``landmark-finder recognize --json`` CLI over the whole corpus: exit code, tracebacks,
  answers per file, wall time and peak RSS (of the CLI process, from the kernel's rusage);
* per file, in one process: time to an answer through ``Recognizer.recognize``; the slowest
  files are listed;
* the 616 KB 16-bit RGBA 8900×8900 PNG alone in the CLI (peak RSS, wall time).

Writes a Markdown report and a JSON file beside it; the machine load (``uptime``) is recorded,
because this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from hostile_corpus import make_corpus, raw_png  # noqa: E402

LANDMARKS = ["taj_mahal", "charminar", "india_gate", "golden_temple", "hawa_mahal"]


_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def run_measured(cmd: list[str]) -> dict:
    """Run ``cmd``; wall time, peak RSS (MB) of that process, exit code, output.

    The command is started from a tiny launcher process: Linux carries a parent's RSS high-water
    mark into a forked child, so forking from this (large) process would report our own peak."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *cmd], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t0
    *err, peak = p.stderr.rstrip("\n").split("\n")
    return {
        "wall_s": wall,
        "peak_rss_mb": int(peak) / 1024,
        "rc": p.returncode,
        "stdout": p.stdout,
        "stderr": "\n".join(err),
    }


def build_index(shared: Path, root: Path) -> Path:
    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.recognition.indexing import build_index as build

    gallery = root / "gallery"
    for lid in LANDMARKS:
        (gallery / lid).mkdir(parents=True)
        for p in sorted((shared / "indian-monuments/gallery" / lid).glob("*.jpg"))[:10]:
            (gallery / lid / p.name).symlink_to(p.resolve())  # a relative --shared too
    out = root / "index"
    build(gallery, out, load_catalog(shared / "indian-monuments/catalog.csv"))
    return out


def big_legit(folder: Path) -> None:
    """Large photos a user may really have: a 12 Mpx and a 48 Mpx JPEG, an 8-bit RGBA PNG
    of 8900×8900 (317 MB decoded: inside the limit, so it is decoded and reduced)."""
    y, x = np.mgrid[0:3000, 0:4000]
    a = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
    Image.fromarray(a).save(folder / "legit-12mpx.jpg", quality=90)
    Image.fromarray(a).resize((8000, 6000)).save(folder / "legit-48mpx.jpg", quality=85)
    (folder / "legit-rgba8-8900.png").write_bytes(raw_png(8900, 8900, 8, 6))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "landmarks")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "hostile.md")
    ap.add_argument("--index", type=Path, default=None)
    args = ap.parse_args()

    from landmark_finder.recognition.recognizer import Recognizer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        index = args.index or build_index(args.shared, root)
        corpus = root / "corpus"
        kinds = make_corpus(corpus, big=True)
        big_legit(corpus)
        n_entries = len(kinds) + 3
        load_before = os.getloadavg()

        cli = [sys.executable, "-m", "landmark_finder.cli.main", "recognize", str(index)]
        whole = run_measured([*cli, str(corpus), "--json"])
        answers = [json.loads(ln) for ln in whole["stdout"].splitlines() if ln.strip()]
        statuses: dict[str, int] = {}
        for a in answers:
            statuses[a["status"]] = statuses.get(a["status"], 0) + 1
        bomb = run_measured([*cli, str(corpus / "bomb-rgba16-8900.png"), "--json"])
        legit = run_measured([*cli, str(corpus / "legit-rgba8-8900.png"), "--json"])
        baseline = run_measured([*cli, str(corpus / "ok.jpg"), "--json"])

        rec = Recognizer.open(index)
        rec.recognize(corpus / "ok.jpg")  # warm-up
        per_file = []
        for f in sorted(corpus.iterdir()):
            t0, c0 = time.perf_counter(), time.process_time()
            r = rec.recognize(f)
            per_file.append((time.perf_counter() - t0, f.name, r.status, time.process_time() - c0))
        per_file.sort(reverse=True)
        load_after = os.getloadavg()

    tracebacks = sum("Traceback" in run["stderr"] for run in (whole, bomb, legit, baseline))
    result = {
        "files": n_entries,
        "answers": len(answers),
        "statuses": statuses,
        "cli_rc": whole["rc"],
        "tracebacks": tracebacks,
        "cli_wall_s": round(whole["wall_s"], 1),
        "cli_peak_rss_mb": round(whole["peak_rss_mb"]),
        "cli_one_photo_peak_rss_mb": round(baseline["peak_rss_mb"]),
        "bomb_rgba16_8900": {
            "peak_rss_mb": round(bomb["peak_rss_mb"]),
            "wall_s": round(bomb["wall_s"], 2),
            "answer": json.loads(bomb["stdout"].splitlines()[0]).get("error"),
        },
        "legit_rgba8_8900": {
            "peak_rss_mb": round(legit["peak_rss_mb"]),
            "wall_s": round(legit["wall_s"], 2),
            "status": json.loads(legit["stdout"].splitlines()[0])["status"],
        },
        "slowest": [
            {"file": n, "seconds": round(t, 3), "cpu_seconds": round(c, 3), "status": s}
            for t, n, s, c in per_file[:8]
        ],
        "load_average": {"before": load_before, "after": load_after},
        "cpus": os.cpu_count(),
    }
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Hostile-input benchmark",
        "",
        f"`python bench/hostile.py`: {n_entries} files (tests/hostile_corpus.py with the big "
        "bombs, plus 12 Mpx and 48 Mpx JPEGs and an 8-bit RGBA PNG of 8900×8900), "
        "5-landmark × 10-photo index, default backbone, verification on. "
        f"{os.cpu_count()} CPUs; load average before {load_before[0]:.1f}, after "
        f"{load_after[0]:.1f} (a shared machine: times are inflated when it is busy).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| answers from `recognize --json` | {len(answers)} of {n_entries} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}) |",
        f"| exit code, tracebacks | {whole['rc']}, {tracebacks} |",
        f"| CLI wall time, whole corpus | {whole['wall_s']:.1f} s |",
        f"| CLI peak RSS, whole corpus | {whole['peak_rss_mb']:.0f} MB |",
        f"| CLI peak RSS, one ordinary photo | {baseline['peak_rss_mb']:.0f} MB |",
        f"| 16-bit RGBA 8900² PNG (616 KB): peak RSS, wall | {bomb['peak_rss_mb']:.0f} MB, "
        f"{bomb['wall_s']:.2f} s (refused: {result['bomb_rgba16_8900']['answer']}) |",
        f"| 8-bit RGBA 8900² PNG (decoded): peak RSS, wall | {legit['peak_rss_mb']:.0f} MB, "
        f"{legit['wall_s']:.2f} s |",
        "",
        "Slowest files (one process, after warm-up, time from file to answer; CPU seconds of",
        "the process, all its threads, beside it):",
        "",
        "| file | seconds | CPU seconds | status |",
        "|---|---|---|---|",
        *[f"| {n} | {t:.3f} | {c:.3f} | {s} |" for t, n, s, c in per_file[:8]],
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

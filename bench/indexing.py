"""Index-building figures: describe rate, dev-gallery build, `index add` to a big index, cold
recognize, `--help`. Writes Markdown + JSON; every figure comes with the machine's load.

    python bench/indexing.py --shared ../shared/landmarks --out bench/indexing_results.md

* describe rate: the 1,202-photo Indian-monuments gallery through the parallel runner, with
  and without keypoints (photos/s), with 1 and with all workers;
* build: `build_index` of that gallery with the verified fit (seconds);
* add: 10 photos added to an index that holds ``--big`` photos (an index of 8 landmarks'
  gallery photos whose segment is repeated under new hashes: a real format-2 index of that
  size, with near-duplicate rows): by default (the fitted model kept: a small change), with
  --no-refit and with --refit; seconds and bytes written;
* cold start: `landmark-finder recognize INDEX one.jpg` and `landmark-finder --help` in fresh
  processes (seconds, best of 3).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.1f} {b:.1f} {c:.1f} on {os.cpu_count() or 1} cores"


def tree_bytes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def cpu_s() -> float:
    """CPU seconds of this process and its reaped children (the pool's workers)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def describe_rate(paths, spec, workers: int) -> tuple[float, float]:
    """(photos per wall second, CPU seconds per photo). On a shared, overloaded machine the
    second is the figure that transfers: an idle machine with C cores describes about
    C / cpu_per_photo photos per second."""
    from landmark_finder.recognition.runner import describe_photos

    t0, c0 = time.perf_counter(), cpu_s()
    n = sum(1 for r in describe_photos(paths, spec, workers) if r.error is None)
    return n / (time.perf_counter() - t0), (cpu_s() - c0) / n


def big_index(src: Path, dst: Path, n: int) -> None:
    """A format-2 index of ``n`` photos: the source's rows repeated in segments of its size,
    with distinct hashes, sharing the source's model (what many `index add`s produce)."""
    import shutil

    from landmark_finder.recognition import store
    from landmark_finder.recognition.index import Index

    shutil.copytree(src, dst)
    idx = Index.open(dst)
    m = store.read_manifest(dst)
    seg = m.segments[0]
    copies = max(0, n // seg.rows - 1)
    for k in range(copies):
        name = f"{seg.name}-copy{k}"
        # immutable files: hard links cost no disk; only the records (new hashes) differ
        shutil.copytree(dst / "segments" / seg.name, dst / "segments" / name, copy_function=os.link)
        rec = dst / "segments" / name / "records.csv"
        rec.unlink()
        text = (dst / "segments" / seg.name / "records.csv").read_text("utf-8").splitlines()
        rows = [text[0]] + [
            line[: line.rfind(",") + 1] + f"{k:08x}" + line[line.rfind(",") + 9 :]
            for line in text[1:]
        ]
        rec.write_text("\n".join(rows) + "\n", "utf-8")
        m.segments.append(store.SegmentRef(name, seg.rows))
    m.generation = store.next_generation(dst)
    m.meta["n_photos"] = sum(s.rows - len(s.deleted) for s in m.segments)
    # as if last refitted at this size (the changes that grew it would have refitted it)
    m.meta["fitted_photos"], m.meta["changed_since_fit"] = m.meta["n_photos"], 0
    with store.WriterLock(dst) as lock:
        store.commit(lock, m)
    del idx


def extractor_for_backbone(name: str):
    from landmark_finder.core.descriptors import Extractor

    return Extractor.create(name)


def cold(cmd: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", type=Path, default=Path("../shared/landmarks"))
    ap.add_argument("--out", type=Path, default=Path("bench/indexing_results.md"))
    ap.add_argument("--big", type=int, default=20_000, help="photos in the big index")
    ap.add_argument("--rate-photos", type=int, default=300, help="photos timed for the rate")
    args = ap.parse_args()
    args.shared = args.shared.resolve()  # the test galleries link to it from a temp folder
    sys.path.insert(0, str(SRC))
    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.core.gallery import scan_gallery
    from landmark_finder.recognition.index import Index
    from landmark_finder.recognition.indexing import WriteOptions, add_photos, build_index
    from landmark_finder.recognition.runner import DescribeSpec, default_workers
    from landmark_finder.verify.keypoints import LocalConfig

    im = args.shared / "indian-monuments"
    fig: dict = {"cores": default_workers()}

    def save() -> None:  # after every stage: a long run still leaves its figures
        args.out.with_suffix(".json").write_text(json.dumps(fig, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        # 1. describe rate, with and without keypoints, 1 and all workers
        ex = extractor_for_backbone("efficientnet-lite2")
        paths = [p for _, p in scan_gallery(im / "gallery").photos][: args.rate_photos]
        for local, key in ((LocalConfig(), "with_keypoints"), (None, "without_keypoints")):
            spec = DescribeSpec.of(ex, local)
            for w in sorted({1, default_workers()}, reverse=True):
                rate, cpu = describe_rate(paths, spec, w)
                fig[f"rate_{key}_workers{w}"] = round(rate, 1)
                fig[f"cpu_s_per_photo_{key}_workers{w}"] = round(cpu, 4)
                fig[f"rate_{key}_workers{w}_load"] = load()
                save()
        # 2. a base index of a part of the gallery, repeated to --big photos; add 10 photos
        base = Path(tmp) / "base"
        part = Path(tmp) / "part"
        for lid in sorted(p.name for p in (im / "gallery").iterdir() if p.is_dir())[:8]:
            (part / lid).mkdir(parents=True)
            for ph in sorted((im / "gallery" / lid).glob("*.jpg")):
                (part / lid / ph.name).symlink_to(ph)
        build_index(part, base, load_catalog(im / "catalog.csv"))
        big = Path(tmp) / "big"
        big_index(base, big, args.big)
        fig["big_photos"] = len(Index.open(big).records)
        unseen = [("new_place", p) for p in sorted((im / "unseen").rglob("*.jpg"))[:20]]
        unseen += [
            ("another_place", p) for p in sorted((im / "queries" / "taj_mahal").glob("*.jpg"))
        ]
        # the default (a small change keeps the fitted model), --no-refit, --refit
        for i, (refit, key) in enumerate(
            ((None, "add10_default"), (False, "add10_no_refit"), (True, "add10_refit"))
        ):
            before = tree_bytes(big)
            t0, c0 = time.perf_counter(), cpu_s()
            batch = unseen[10 * i : 10 * i + 10]
            add_photos(big, batch, options=WriteOptions(refit=refit))
            fig[f"{key}_s"] = round(time.perf_counter() - t0, 1)
            fig[f"{key}_cpu_s"] = round(cpu_s() - c0, 1)
            after = tree_bytes(big)
            fig[f"{key}_bytes_written"] = sum(
                s for p, s in after.items() if p not in before or before[p] != s
            )
            fig[f"{key}_load"] = load()
            save()
        shutil.rmtree(big)
        # 3. cold start
        q = sorted((im / "queries").rglob("*.jpg"))[0]
        cli = [sys.executable, "-c", "from landmark_finder.cli.main import main; main()"]
        fig["cold_recognize_s"] = round(cold([*cli, "recognize", str(base), str(q)]), 2)
        fig["help_s"] = round(cold([*cli, "--help"]), 2)
        fig["cold_load"] = load()
        save()
        # 4. the whole dev gallery: build time, bytes per photo, the benchmark
        out = Path(tmp) / "dev"
        fig["build_load_before"] = load()
        t0, c0 = time.perf_counter(), cpu_s()
        build_index(im / "gallery", out, load_catalog(im / "catalog.csv"))
        fig["build_s"] = round(time.perf_counter() - t0, 1)
        fig["build_cpu_s"] = round(cpu_s() - c0, 1)
        fig["build_load_after"] = load()
        idx = Index.open(out)
        fig["n_photos"] = len(idx.records)
        seg = out / "segments" / idx.segments[0].name
        fig["bytes_per_photo"] = {
            f.name: round(f.stat().st_size / len(idx.records)) for f in sorted(seg.iterdir())
        }
        save()
        from landmark_finder.recognition.evaluate import evaluate
        from landmark_finder.recognition.recognizer import Recognizer

        queries = [im / "queries", im / "unseen", args.shared / "distractors"]
        for verify in (True, False):
            result, _ = evaluate(Recognizer.open(out, verify=verify), queries)
            d = result.to_dict()
            fig[f"dev_benchmark_{'verified' if verify else 'global'}"] = {
                k: round(d[k], 4) for k in ("top1_accuracy", "gap", "auroc")
            }
            fig["dev_benchmark_load"] = load()
            save()
    lines = ["# Index building and start-up figures", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in fig.items()]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

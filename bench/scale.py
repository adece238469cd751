"""Search at scale: compressed search against exact search at 100k and 1M references.

    python bench/scale.py --shared ../shared/landmarks --out bench/scale_results.md

References are the real dev gallery (``indian-monuments/gallery``, described with the project's
extractor and whitened as an index would) plus synthetic distractors drawn from a model fitted
on those real whitened descriptors: cluster centres from N(mu, S_total - S_within) and photos
around each centre from N(0, S_within), with as many photos per cluster as real landmarks have,
then L2-normalised. Marginally every synthetic photo follows the real N(mu, S_total) and the
synthetic "landmarks" are as tight as real ones, so they crowd the neighbourhoods of real
queries the way a large gallery of other places would. Queries are the real photos of
``queries/``, ``unseen/`` and ``distractors/``.

Re-scoring, as indexes do it (``raw``): the shortlist is re-scored from the unwhitened float16
descriptors (what an index's segments hold) through the whitening, with one stored length per
reference (``core.search.ProjectedRows``). Synthetic references get unwhitened descriptors too:
``mean + length * y @ pinv(projection)``, whose whitening is the synthetic unit vector ``y``
(``length`` is the real gallery's median). ``--stored`` also measures re-scoring from a stored
float16 copy of the whitened vectors (what indexes did before), ``--float32`` from float32 ones.

For each size: build time, RAM per reference (measured in a fresh process that only opens the
compressed index: anonymous memory, i.e. what the process owns; the memory-mapped vectors are
page cache the kernel may drop and are reported apart), single-query p50/p95 latency, and how
often the top landmark (the project's landmark scoring over the 200-photo shortlist) equals the
one exact search gives. Descriptors of the real photos are cached in ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SYNTH_SEED = 13
CHUNK = 65_536


# ------------------------------------------------------------------------------ real photos


def real_descriptors(shared: Path, cache: Path, backbone: str) -> dict[str, np.ndarray]:
    """Raw descriptors of the gallery (with landmark labels) and of every query photo."""
    from landmark_finder.core.descriptors import Extractor
    from landmark_finder.core.gallery import scan_gallery
    from landmark_finder.core.images import iter_image_files, load_image

    im = shared / "indian-monuments"
    scan = scan_gallery(im / "gallery")
    qpaths = [
        p
        for d in (im / "queries", im / "unseen", shared / "distractors")
        for p in iter_image_files(d)
    ]
    key = f"{backbone}:{len(scan.photos)}:{len(qpaths)}"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return {k: z[k] for k in ("gallery", "labels", "queries")}
    ex = Extractor.create(backbone)
    side = int(ex.preprocessing.size * max(ex.preprocessing.scales))

    def describe(paths: list[Path]) -> np.ndarray:
        return np.stack([ex.describe(load_image(p, max_side=side)) for p in paths])

    out = {
        "gallery": describe([p for _, p in scan.photos]),
        "labels": np.array([lid for lid, _ in scan.photos]),
        "queries": describe(qpaths),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=np.array(key), **out)
    return out


# ------------------------------------------------------------------------------ synthetic


class DistractorModel:
    """Clustered Gaussian fitted on whitened, normalised real descriptors (see module doc)."""

    def __init__(self, x: np.ndarray, labels: np.ndarray):
        x = np.asarray(x, np.float64)
        self.mean = x.mean(0)
        groups = [x[labels == lab] for lab in np.unique(labels)]
        within = np.concatenate([g - g.mean(0) for g in groups])
        s_within = within.T @ within / len(within)
        s_total = np.cov(x.T)
        self.sizes = np.array([len(g) for g in groups])
        self.within = _sqrt_psd(s_within)
        self.between = _sqrt_psd(s_total - s_within)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` unit vectors and their cluster ids (0-based, consecutive)."""
        sizes = []
        while sum(sizes) < n:
            sizes.append(int(rng.choice(self.sizes)))
        sizes[-1] -= sum(sizes) - n
        d = len(self.mean)
        centres = self.mean + rng.standard_normal((len(sizes), d)) @ self.between.T
        cluster = np.repeat(np.arange(len(sizes)), sizes)
        x = centres[cluster] + rng.standard_normal((n, d)) @ self.within.T
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x.astype(np.float32), cluster


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return v * np.sqrt(np.clip(w, 0, None))


def write_references(path: Path, real: np.ndarray, model: DistractorModel, n: int) -> np.ndarray:
    """Real gallery rows first, then synthetic ones, into a .npy file; returns cluster ids."""
    rng = np.random.default_rng(SYNTH_SEED)
    out = np.lib.format.open_memmap(path, "w+", np.float32, (n, real.shape[1]))
    out[: len(real)] = real
    clusters = []
    for start in range(len(real), n, CHUNK):
        m = min(CHUNK, n - start)
        x, c = model.sample(m, rng)
        out[start : start + m] = x
        clusters.append(c + (clusters[-1].max() + 1 if clusters else 0))
    out.flush()
    del out
    return np.concatenate(clusters) if clusters else np.zeros(0, np.int64)


def write_raw(path: Path, refs: np.ndarray, real_raw: np.ndarray, white, length: float) -> None:
    """Unwhitened float16 descriptors of every reference (see module doc), into a .npy file."""
    back = np.linalg.pinv(white.projection.astype(np.float64)).astype(np.float32)
    out = np.lib.format.open_memmap(path, "w+", np.float16, (len(refs), real_raw.shape[1]))
    out[: len(real_raw)] = real_raw
    for start in range(len(real_raw), len(refs), CHUNK):
        y = np.asarray(refs[start : start + CHUNK], np.float32)
        out[start : start + len(y)] = white.mean + (length * y) @ back
    out.flush()
    del out


def projected_lengths(raw: np.ndarray, white) -> tuple[np.ndarray, np.ndarray]:
    """The whitened unit vectors of float16 ``raw`` rows (for the codes) and their lengths."""
    units, lengths = [], []
    for start in range(0, len(raw), CHUNK):
        u, n = white.with_lengths(raw[start : start + CHUNK])
        units.append(u)
        lengths.append(n)
    return np.concatenate(units), np.concatenate(lengths)


# ------------------------------------------------------------------------------ measuring


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over references too many to hold twice: chunked, merged."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_r = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(vectors), 4 * CHUNK):
        block = np.asarray(vectors[start : start + 4 * CHUNK], np.float32)
        s = queries @ block.T
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], 1)
        best_r = np.concatenate([best_r, part + start], 1)
        order = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s, best_r = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_r, order, 1)
    return best_s, best_r


def _status(field: str) -> int:
    """A /proc/self/status memory figure in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


BATCH = 180  # queries searched at once: the regions of one crowded photo (explain.dense)


def measure_worker(args: argparse.Namespace) -> int:
    """In a fresh process: open the compressed index, time single queries, report memory."""
    from threadpoolctl import threadpool_limits

    from landmark_finder.core.search import CompressedConfig, CompressedSearch

    threadpool_limits(1)
    queries = np.load(args.queries, allow_pickle=False)
    cfg = CompressedConfig(**json.loads(args.config))
    anon0, file0 = _status("RssAnon"), _status("RssFile")
    t0 = time.perf_counter()
    d = args.index_dir
    if (d / "lengths.npy").exists():  # as an index opens it: raw rows, whitening, lengths
        from landmark_finder.core.search import ProjectedRows

        def mapped(name: str) -> np.ndarray:
            return np.load(d / name, mmap_mode="r", allow_pickle=False)

        with np.load(d / "whitening.npz", allow_pickle=False) as z:
            rescore = ProjectedRows(
                mapped("raw.npy"), z["mean"], z["projection"], mapped("lengths.npy")
            )
        cs = CompressedSearch.open(d / "ann.faiss", rescore, len(rescore.lengths), cfg)
    else:
        cs = CompressedSearch.read(d / "ann.faiss", d / "ann_vectors.npy", cfg)
    open_s = time.perf_counter() - t0
    anon1 = _status("RssAnon")
    cs.search(queries[:5], args.k)  # warm-up: faiss allocations, first pages
    times, rows, sims = [], [], []
    for q in queries:
        t = time.perf_counter()
        s, r = cs.search(q, args.k)
        times.append(time.perf_counter() - t)
        rows.append(r[0])
        sims.append(s[0])
    # many queries at once (the regions of a crowded photo: 180), as Recognizer.decide_each
    batch = queries[:BATCH]
    t = time.perf_counter()
    _, batch_rows = cs.search(batch, args.k)
    batch_s = time.perf_counter() - t
    np.savez(args.result, rows=np.stack(rows), sims=np.stack(sims), times=np.array(times))
    json.dump(
        {
            "open_s": open_s,
            "batch_ms_per_query": 1000 * batch_s / len(batch),
            "batch_same_rows": bool(np.array_equal(batch_rows, np.stack(rows[: len(batch)]))),
            "anon_open_bytes": anon1 - anon0,
            "anon_after_search_bytes": _status("RssAnon") - anon0,
            "file_after_search_bytes": _status("RssFile") - file0,
        },
        sys.stdout,
    )
    return 0


def top_landmarks(sims: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from landmark_finder.core.decision import aggregate

    counts = np.bincount(labels)
    out = []
    for s, r in zip(sims, rows, strict=True):
        ls = aggregate(s, r, labels, counts)
        out.append(ls.labels[0] if len(ls.labels) else -1)
    return np.array(out)


def run_size(n, real, real_labels, queries, model, workdir: Path, variants, raw) -> list[dict]:
    """Generate ``n`` references once, search them exactly, then measure each variant
    (``raw``: the real gallery's unwhitened descriptors, their whitening and median length)."""
    from landmark_finder.core.decision import SHORTLIST

    vec_path = workdir / f"refs-{n}.npy"
    t0 = time.perf_counter()
    clusters = write_references(vec_path, real, model, n)
    gen_s = time.perf_counter() - t0
    labels = np.concatenate([real_labels, clusters + real_labels.max() + 1])
    refs = np.load(vec_path, mmap_mode="r")

    t0 = time.perf_counter()
    ex_s, ex_r = exact_top(refs, queries, SHORTLIST)
    exact_batch_s = time.perf_counter() - t0
    exact_top_lm = top_landmarks(ex_s, ex_r, labels)
    exact = (ex_s, ex_r, exact_top_lm, exact_batch_s, gen_s, int(real_labels.max()) + 1)
    raw_path = workdir / f"raw-{n}.npy"
    real_raw, white, length = raw
    if any(kind == "raw" for _, kind in variants):
        write_raw(raw_path, refs, real_raw, white, length)
    out = [
        measure(refs, labels, queries, workdir, cfg, kind, exact, raw_path, white)
        for cfg, kind in variants
    ]
    del refs
    vec_path.unlink()
    raw_path.unlink(missing_ok=True)
    return out


def measure(refs, labels, queries, workdir: Path, cfg: dict, kind, exact, raw_path, white) -> dict:
    """Build, persist, and time one compressed-search variant against the exact results:
    ``kind`` "raw" (re-scored from ``raw_path`` through the whitening, as indexes do),
    "float16" or "float32" (from a stored copy of the whitened vectors)."""
    from landmark_finder.core.decision import SHORTLIST
    from landmark_finder.core.search import CompressedConfig, CompressedSearch

    ex_s, ex_r, exact_top_lm, exact_batch_s, gen_s, n_real_lm = exact
    n = len(refs)
    index_dir = workdir / f"index-{n}"
    index_dir.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    if kind == "raw":
        units, lengths = projected_lengths(np.load(raw_path, mmap_mode="r"), white)
        cs = CompressedSearch.build(units, CompressedConfig(**cfg))
        build_s = time.perf_counter() - t0
        (index_dir / "ann.faiss").write_bytes(cs.index_bytes())
        np.save(index_dir / "lengths.npy", lengths)
        np.savez(index_dir / "whitening.npz", mean=white.mean, projection=white.projection)
        os.link(raw_path, index_dir / "raw.npy")
        del units
    else:
        stored = refs if kind == "float32" else np.asarray(refs, np.float16)
        cs = CompressedSearch.build(stored, CompressedConfig(**cfg))
        build_s = time.perf_counter() - t0
        cs.write(index_dir / "ann.faiss", index_dir / "ann_vectors.npy")
        del stored
    del cs

    qpath, rpath = workdir / "queries.npy", workdir / "result.npz"
    np.save(qpath, queries)
    cmd = [sys.executable, __file__, "--measure", str(index_dir), "--queries", str(qpath)]
    cmd += ["--result", str(rpath), "--config", json.dumps(cfg), "--k", str(SHORTLIST)]
    mem = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    with np.load(rpath) as z:
        rows, sims, times = z["rows"], z["sims"], z["times"]
    top_lm = top_landmarks(sims, rows, labels)
    files = {p.name: p.stat().st_size for p in index_dir.iterdir()}
    for p in index_dir.iterdir():
        p.unlink()
    index_dir.rmdir()
    return {
        "n": n,
        "config": cfg,
        "factory": CompressedConfig(**cfg).factory(n, refs.shape[1]),
        "rescored_from": kind,
        "generate_s": gen_s,
        "build_s": build_s,
        "exact_batch_ms_per_query": 1000 * exact_batch_s / len(queries),
        "p50_ms": 1000 * float(np.median(times)),
        "p95_ms": 1000 * float(np.percentile(times, 95)),
        "batch_ms_per_query": mem["batch_ms_per_query"],
        "batch_same_rows": mem["batch_same_rows"],
        "ram_bytes_per_ref": mem["anon_open_bytes"] / n,
        "ram_after_search_bytes_per_ref": mem["anon_after_search_bytes"] / n,
        "mapped_bytes_touched": mem["file_after_search_bytes"],
        "index_file_bytes_per_ref": files["ann.faiss"] / n,
        # what re-scoring adds to an index on disk (the raw rows are the index's own)
        "rescore_file_bytes_per_ref": files.get("ann_vectors.npy", files.get("lengths.npy", 0)) / n,
        "top_landmark_equal": float((top_lm == exact_top_lm).mean()),
        "top1_photo_equal": float((rows[:, 0] == ex_r[:, 0]).mean()),
        "recall_at_200": float(
            np.mean([len(np.intersect1d(a, b)) / len(b) for a, b in zip(rows, ex_r, strict=True)])
        ),
        "real_top_landmark_share": float((exact_top_lm < n_real_lm).mean()),
        "open_s": mem["open_s"],
    }


# ------------------------------------------------------------------------------ report


def _knobs(cfg: dict) -> str:
    """The search-time settings of a row: the defaults unless the row overrides them."""
    from landmark_finder.core.search import CompressedConfig

    c = CompressedConfig(**cfg)
    parts = f"{c.threads} part" + "s" * (c.threads > 1) if c.threads else "a part per core"
    return f"{c.rerank:,} re-ranked, shortlist {c.shortlist}, {parts}"


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Search at scale (bench/scale.py)",
        "",
        f"{meta['machine']}; load average at start {meta['load_start']}, at end "
        f"{meta['load_end']}. {meta['n_real']} real gallery photos, "
        f"{meta['n_queries']} real queries, {meta['dim']}-d whitened descriptors. "
        f"Synthetic/real sanity check: mean top-1 similarity of the real queries to the real "
        f"gallery {meta['q_real_top1']:.3f}, to as many synthetic references "
        f"{meta['q_synth_top1']:.3f}; mean similarity of two random real photos "
        f"{meta['pair_real']:.3f}, of two synthetic ones {meta['pair_synth']:.3f}.",
        "",
        "| references | index | re-scored from | build s | RAM B/ref | disk B/ref | p50 ms "
        "| p95 ms | ms/query, 180 at once | exact ms/query (batched) | top landmark = exact "
        "| top photo = exact | recall@200 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | `{r['factory']}` {_knobs(r['config'])} | {r['rescored_from']} | "
            f"{r['build_s']:.0f} | {r['ram_bytes_per_ref']:.0f} | "
            f"{r['index_file_bytes_per_ref'] + r['rescore_file_bytes_per_ref']:.0f} | "
            f"{r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['batch_ms_per_query']:.1f}"
            f"{'' if r['batch_same_rows'] else ' (other rows!)'} | "
            f"{r['exact_batch_ms_per_query']:.1f} | "
            f"{100 * r['top_landmark_equal']:.1f} % | {100 * r['top1_photo_equal']:.1f} % | "
            f"{r['recall_at_200']:.3f} |"
        )
    lines += [
        "",
        "Re-scored from: `raw` = the index's own float16 descriptors through the whitening "
        "(one stored length per reference), as indexes do; `float16`/`float32` = a stored "
        "copy of the whitened vectors. RAM B/ref: anonymous memory the process gained by "
        "opening the compressed index, divided by the references (the memory-mapped rows are "
        "page cache and not counted; a search touches only its shortlist's rows). Disk B/ref: "
        "what the search adds to an index (the faiss codes plus the lengths or the stored "
        "vectors; the descriptors themselves are in the segments). Latency: one query at a "
        "time, shortlist of 200 photos as the recognizer asks, wall clock (and per query of "
        "180 searched in one call, the regions of a crowded photo: the same rows); the references "
        "are searched in parts, one per core at once unless the row says otherwise "
        "(`core.search.SplitIndex`).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shared", type=Path, default=Path("../shared/landmarks"))
    ap.add_argument("--out", type=Path, default=Path("bench/scale_results.md"))
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--backbone", default="efficientnet-lite2")
    ap.add_argument("--cache", type=Path, default=Path("out/scale-real.npz"))
    ap.add_argument("--workdir", type=Path, default=None, help="scratch (needs ~4 KB/reference)")
    ap.add_argument(
        "--configs",
        default="[{}]",
        help="JSON list of CompressedConfig overrides to measure at every size",
    )
    ap.add_argument(
        "--stored",
        action="store_true",
        help="also measure re-scoring from a stored float16 copy of the whitened vectors",
    )
    ap.add_argument(
        "--float32",
        action="store_true",
        help="also measure re-scoring from a stored float32 copy of the whitened vectors",
    )
    # Accepted for older command lines (float16 stored vectors were the default then).
    ap.add_argument("--float16", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--queries", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--config", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=200, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        args.index_dir = args.measure
        return measure_worker(args)

    from threadpoolctl import threadpool_limits

    from landmark_finder.core.whitening import fit_whitening

    # One thread for BLAS and OpenMP: on a shared machine spinning thread pools cost far more
    # than they give (see core/search.py). The compressed search runs its parts on its own
    # threads, one per core (each with one OpenMP thread), as it does in an index.
    threadpool_limits(1)
    load_start = os.getloadavg()
    data = real_descriptors(args.shared, args.cache, args.backbone)
    _, real_labels = np.unique(data["labels"], return_inverse=True)
    white = fit_whitening(data["gallery"], real_labels)
    real, lengths = white.with_lengths(data["gallery"])
    queries = white(data["queries"])
    raw = (data["gallery"], white, float(np.median(lengths)))
    model = DistractorModel(real, real_labels)
    probe, _ = model.sample(len(real), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    pairs = rng.integers(0, len(real), (2, 5000))
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "load_start": " ".join(f"{x:.1f}" for x in load_start),
        "n_real": len(real),
        "n_queries": len(queries),
        "dim": real.shape[1],
        "q_real_top1": float((queries @ real.T).max(1).mean()),
        "q_synth_top1": float((queries @ probe.T).max(1).mean()),
        "pair_real": float(np.einsum("nd,nd->n", real[pairs[0]], real[pairs[1]]).mean()),
        "pair_synth": float(np.einsum("nd,nd->n", probe[pairs[0]], probe[pairs[1]]).mean()),
    }
    results = []
    kinds = ["raw"] + ["float16"] * args.stored + ["float32"] * args.float32
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        variants = [(cfg, kind) for cfg in json.loads(args.configs) for kind in kinds]
        for n in [int(s) for s in args.sizes.split(",")]:
            for r in run_size(n, real, real_labels, queries, model, Path(tmp), variants, raw):
                print(json.dumps(r), flush=True)
                results.append(r)
    meta["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    args.out.write_text(markdown(results, meta), "utf-8")
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": results}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

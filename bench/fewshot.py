"""Few-shot benchmark: recognition with 1, 3, 5, 10 reference photos per landmark, before/after.

    python bench/fewshot.py --shared ../shared/landmarks --out bench/fewshot_results.md

Every photo (gallery, queries, unseen, distractors) is decoded once; its descriptors (the whole
photo and the crops of ``core.views``) and its root-SIFT keypoints are cached under ``--cache``
(reused by later runs). Each configuration then builds an in-memory index from the cache,
keeps K random references per landmark (seeds 0/1/2; the same choice as
``evaluate --max-refs-per-landmark K --seed S``), refits it exactly as ``index add`` would, and
answers every query through ``Recognizer.decide`` — the library's own decision path, minus
decoding the photo again. Figures are those of ``evaluate``.

* **before**: the whole photo only, no sites (the behaviour before few-shot views).
* **after**: views ("crops") on both sides, whitening fitted on every view, and the
  Qutb complex (Qutub Minar, Alai Minar, Alai Darwaza, Iron Pillar) as one ``site``.
* **fused**: "after" with the fused descriptor ``efficientnet-lite2+sscd`` (``backbones.sscd``;
  its views are cached apart, the keypoints are the same).

Writes a Markdown table, a JSON file with every figure and the curve PNG for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

FUSED = "efficientnet-lite2+sscd"
ORDER = ("before", "after", "fused")
SITE = ("qutb_complex", ("qutub_minar", "alai_minar", "alai_darwaza", "iron_pillar"))
CHUNK = 25


def photo_lists(shared: Path) -> dict[str, list[tuple[str | None, Path]]]:
    """(landmark id or None, photo) of the gallery, and of every query with its truth."""
    from landmark_finder.core.gallery import scan_gallery
    from landmark_finder.core.images import iter_image_files
    from landmark_finder.core.naming import is_augmented

    im = shared / "indian-monuments"
    gallery = [(lid, p) for lid, p in scan_gallery(im / "gallery").photos]
    known = {lid for lid, _ in gallery}
    queries: list[tuple[str | None, Path]] = []
    for p in iter_image_files(im / "queries"):
        if not is_augmented(p):
            lid = p.relative_to(im / "queries").parts[0]
            queries.append((lid if lid in known else None, p))
    queries += [(None, p) for p in iter_image_files(im / "unseen")]
    queries += [(None, p) for p in iter_image_files(shared / "distractors")]
    return {"gallery": gallery, "queries": queries}


def cached_rows(folder: Path) -> set[int]:
    done: set[int] = set()
    for f in folder.glob("*.npz"):
        with np.load(f, allow_pickle=False) as z:
            done |= set(z["rows"].tolist())
    return done


def describe_all(
    paths: list[Path],
    folder: Path,
    only: list[int] | None = None,
    backbone: str = "efficientnet-lite2",
    keypoints: bool = True,
) -> None:
    """Views (and keypoints) of the photos (``only`` these rows), CHUNK photos per file; photos
    already in the cache are skipped, so a killed run resumes and parallel runs can share it."""
    from landmark_finder import defaults
    from landmark_finder.core.descriptors import Extractor
    from landmark_finder.core.images import load_image
    from landmark_finder.core.views import crop_views
    from landmark_finder.verify.keypoints import LocalConfig, LocalStore, extract

    folder.mkdir(parents=True, exist_ok=True)
    done = cached_rows(folder)
    todo = [i for i in (range(len(paths)) if only is None else only) if i not in done]
    # a query's keypoint budget, raw: a gallery photo keeps its strongest when loaded
    ex, cfg = None, LocalConfig(max_keypoints=defaults.QUERY_KEYPOINTS, codes=0)
    for c in range(0, len(todo), CHUNK):
        ex = ex or Extractor.create(backbone, threads=1)
        rows = np.array(todo[c : c + CHUNK])
        views, feats = [], []
        for i in rows:
            img = load_image(paths[i], max_side=512)
            views.append(np.stack([ex.describe(v) for v in crop_views(img, "crops")]))
            if keypoints:
                feats.append(extract(img, cfg))
        out = folder / f"b{rows[0]}_{len(rows)}_{time.time_ns()}.npz"
        if keypoints:
            st = LocalStore.from_features(cfg, feats)
            local = {"xy": st.xy, "desc": st.desc, "offsets": st.offsets}
        else:
            local = {}
        np.savez(out, rows=rows, views=np.stack(views), **local)
        print(f"{folder.name}: {c + len(rows)}/{len(todo)}", file=sys.stderr, flush=True)


def load_views(folder: Path, n: int, need: list[int]) -> np.ndarray:
    """(n, V, D) views from the chunk files; rows not cached (and not needed) are zeros."""
    views, done = None, set()
    for f in sorted(folder.glob("*.npz")):
        with np.load(f, allow_pickle=False) as z:
            if views is None:
                views = np.zeros((n, *z["views"].shape[1:]), np.float32)
            views[z["rows"]] = z["views"]
            done |= set(z["rows"].tolist())
    if views is None or set(need) - done:
        raise SystemExit(f"{folder}: {len(set(need) - done)} photos not described yet")
    return views


def load_cache(folder: Path, n: int, need: list[int], gallery: bool):
    """(views (n, V, D), keypoints) from the chunk files: for the ``gallery`` a LocalStore as a
    new index stores them (its strongest, as codes), else each query's raw features. Rows not
    cached (and not needed) are zeros without keypoints."""
    from landmark_finder.verify.keypoints import LocalConfig, LocalFeatures, LocalStore

    views = load_views(folder, n, need)
    feats: list = [None] * n
    for f in sorted(folder.glob("*.npz")):
        with np.load(f, allow_pickle=False) as z:
            off = z["offsets"]
            for j, r in enumerate(z["rows"]):
                a, b = off[j], off[j + 1]
                feats[r] = LocalFeatures(z["xy"][a:b].astype(np.float32), z["desc"][a:b])
    empty = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8))
    feats = [x or empty for x in feats]
    if not gallery:
        return views, feats
    cfg = LocalConfig()
    kept = [LocalFeatures(f.xy[: cfg.max_keypoints], f.desc[: cfg.max_keypoints]) for f in feats]
    return views, LocalStore.from_features(cfg, kept)


def needed_rows(labels: list[str], shots: list[int], seeds: list[int]) -> list[int]:
    """Gallery rows any (K, seed) few-shot run keeps: the choice of ``few_shot_rows``."""
    _, lab = np.unique(np.array(labels), return_inverse=True)
    out: set[int] = set()
    for seed in seeds:
        for k in shots:
            rng = np.random.default_rng(seed)
            for c in range(lab.max() + 1):
                out |= set(rng.permutation(np.flatnonzero(lab == c))[:k].tolist())
    return sorted(out)


def make_index(
    shared: Path, gallery, views, local, after: bool, backbone: str = "efficientnet-lite2"
):
    from landmark_finder.core.catalog import Catalog, load_catalog
    from landmark_finder.core.descriptors import Preprocessing
    from landmark_finder.recognition.index import Index, PhotoRecord

    cat = load_catalog(shared / "indian-monuments" / "catalog.csv")
    if after:
        cat = Catalog([replace(lm, site=SITE[0]) if lm.id in SITE[1] else lm for lm in cat])
    return Index(
        backbone,
        "",
        Preprocessing(views="crops" if after else "full"),
        views[:, 0].copy(),
        [PhotoRecord(lid, str(p), str(i)) for i, (lid, p) in enumerate(gallery)],
        cat,
        local=local,
        views=views[:, 1:].copy() if after else None,
    )


def run(index, rows, queries, qviews, qlocal, verify: bool, n_views: int):
    """Refit the few-shot index and answer every query through Recognizer.decide."""
    from landmark_finder.recognition.evaluate import summarize
    from landmark_finder.recognition.recognizer import Recognizer

    if not verify:  # global only: no keypoints, so no verified model to fit
        index = replace(index, local=None, verified=None)
    sub = index.subset(rows) if rows is not None else replace(index)
    if rows is None:
        sub.refit()
    rec = Recognizer(sub, None, verify=verify)
    proj = sub.project(qviews[:, :n_views])
    outcomes = []
    for i, (truth, p) in enumerate(queries):
        t0 = time.perf_counter()
        r = rec.decide(proj[i], str(p), local=qlocal[i] if verify else None)
        r.elapsed_ms = (time.perf_counter() - t0) * 1000
        outcomes.append((str(p), truth, r))
    return summarize(outcomes, len(sub.records))


def plot(rows: list[dict], path: Path) -> None:
    from landmark_finder.core.figures import new_figure, save_figure

    fig = new_figure(9, 3.6)
    axes = fig.subplots(1, 2)
    shots = sorted({r["k"] for r in rows if r["k"] != "all"})
    for ax, key, title in zip(
        axes, ("top1", "coverage"), ("top-1 accuracy", "coverage at 99 % precision"), strict=True
    ):
        for method, colour in (("before", "tab:grey"), ("after", "tab:blue"), ("fused", "tab:red")):
            for verify, style in ((False, "--"), (True, "-")):
                pts = [r for r in rows if r["method"] == method and r["verify"] == verify]
                xs = [k for k in shots if any(r["k"] == k for r in pts)]
                ys = [np.mean([r[key] for r in pts if r["k"] == k]) for k in xs]
                if xs:
                    label = f"{method}, {'verified' if verify else 'global only'}"
                    ax.plot(xs, ys, style, color=colour, marker="o", label=label)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(shots, [str(k) for k in shots])
        ax.set_xlabel("reference photos per landmark")
        ax.set_title(title)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[1].legend(loc="upper left", fontsize=8)
    save_figure(fig, path)


def table(rows: list[dict]) -> str:
    out = [
        "| method | verified | refs/landmark | seeds | top-1 | coverage @99 % | AUROC "
        "| site answers (right) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted(
        {(r["method"], r["verify"], r["k"]) for r in rows},
        key=lambda t: (t[1], t[2] == "all", t[2] if t[2] != "all" else 0, ORDER.index(t[0])),
    )
    for m, v, k in keys:
        rs = [r for r in rows if (r["method"], r["verify"], r["k"]) == (m, v, k)]
        top = [r["top1"] for r in rs]
        sd = f" ± {np.std(top):.3f}" if len(rs) > 1 else ""
        out.append(
            f"| {m} | {'yes' if v else 'no'} | {k} | {len(rs)} | {np.mean(top):.3f}{sd} | "
            f"{np.mean([r['coverage'] for r in rs]):.3f} | "
            f"{np.mean([r['auroc'] for r in rs]):.3f} | "
            f"{sum(r['site_answers'] for r in rs)} ({sum(r['site_right'] for r in rs)}) |"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shared", type=Path, default=Path("../shared/landmarks"))
    ap.add_argument("--out", type=Path, default=Path("bench/fewshot_results.md"))
    ap.add_argument("--cache", type=Path, default=Path("out/fewshot-cache"))
    ap.add_argument("--shots", default="1,3,5,10")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--verified-seeds", default="0,1,2", help="seeds run with verification")
    ap.add_argument("--full", action="store_true", help="also the full gallery (slow)")
    ap.add_argument("--methods", default="before,after,fused")
    ap.add_argument(
        "--from-json",
        type=Path,
        nargs="*",
        help="only write the table and curve from the JSON files of earlier (parallel) runs",
    )
    ap.add_argument(
        "--query-every", type=int, default=1, help="every Nth query only (a quicker estimate)"
    )
    args = ap.parse_args()

    from landmark_finder.recognition.evaluate import few_shot_rows

    if args.from_json:
        rows = [r for f in args.from_json for r in json.loads(f.read_text())]
        write_outputs(rows, args.out)
        return 0
    lists = photo_lists(args.shared)
    lists["queries"] = lists["queries"][:: args.query_every]
    k_list = [int(k) for k in args.shots.split(",")]
    seed_all = sorted({int(s) for s in f"{args.seeds},{args.verified_seeds}".split(",") if s})
    gpaths = [p for _, p in lists["gallery"]]
    need = (
        list(range(len(gpaths)))
        if args.full
        else needed_rows([lid for lid, _ in lists["gallery"]], k_list, seed_all)
    )
    describe_all(gpaths, args.cache / "gallery_parts", need)
    qall = photo_lists(args.shared)["queries"]
    qrows = list(range(0, len(qall), args.query_every))
    describe_all([p for _, p in qall], args.cache / "queries_parts", qrows)
    gviews, glocal = load_cache(args.cache / "gallery_parts", len(gpaths), need, True)
    qviews, qfeats = load_cache(args.cache / "queries_parts", len(qall), qrows, False)
    qlocal = [qfeats[i] for i in qrows]
    views = {"efficientnet-lite2": (gviews, qviews[qrows])}
    if "fused" in args.methods.split(","):  # the same photos' views through FUSED
        g, q = args.cache / "fused_gallery", args.cache / "fused_queries"
        describe_all(gpaths, g, need, FUSED, keypoints=False)
        describe_all([p for _, p in qall], q, qrows, FUSED, keypoints=False)
        fq = load_views(q, len(qall), qrows)
        views[FUSED] = (load_views(g, len(gpaths), need), fq[qrows])
    rows: list[dict] = []
    results = args.out.with_suffix(".json")
    for method in args.methods.split(","):
        backbone = FUSED if method == "fused" else "efficientnet-lite2"
        gv, qviews = views[backbone]
        after = method != "before"
        index = make_index(args.shared, lists["gallery"], gv, glocal, after, backbone)
        nv = index.n_views
        shots: list = k_list + (["all"] if args.full else [])
        for k in shots:
            for verify in (False, True):
                seeds = args.verified_seeds if verify else args.seeds
                for seed in [int(s) for s in seeds.split(",") if s] if k != "all" else [0]:
                    sel = None if k == "all" else few_shot_rows_of(index, k, seed, few_shot_rows)
                    t0, load0 = time.perf_counter(), os.getloadavg()[0]
                    res, det = run(index, sel, lists["queries"], qviews, qlocal, verify, nv)
                    row = {
                        "method": method,
                        "verify": verify,
                        "k": k,
                        "seed": seed,
                        "top1": res.top1_accuracy,
                        "coverage": res.coverage_at_99_precision,
                        "auroc": res.auroc,
                        "gap": res.gap,
                        "site_answers": det.site_answers,
                        "site_right": det.site_answers_right,
                        "seconds": round(time.perf_counter() - t0, 1),
                        "load": round(load0, 1),
                    }
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    results.write_text(json.dumps(rows, indent=1))
    write_outputs(rows, args.out)
    return 0


def write_outputs(rows: list[dict], out: Path) -> None:
    md = (
        "# Few-shot benchmark (Indian monuments, dev queries + unseen + distractors)\n\n"
        f"{table(rows)}\n\nMean over seeds (± SD of top-1). Written by bench/fewshot.py.\n"
    )
    out.write_text(md)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    plot(rows, out.with_name("fewshot_curve.png"))
    print(md)


def few_shot_rows_of(index, k: int, seed: int, few_shot_rows) -> np.ndarray:
    """The rows `evaluate --max-refs-per-landmark k --seed seed` keeps (same random choice)."""

    class _R:  # few_shot_rows reads only recognizer.index
        pass

    r = _R()
    r.index = index
    return few_shot_rows(r, k, seed)


if __name__ == "__main__":
    sys.exit(main())

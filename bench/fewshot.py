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


def describe_all(paths: list[Path], folder: Path, part: int = 0, parts: int = 1) -> None:
    """Views and keypoints of every photo, in chunks of CHUNK (a killed run resumes)."""
    from landmark_finder.core.descriptors import Extractor
    from landmark_finder.core.images import load_image
    from landmark_finder.core.views import crop_views
    from landmark_finder.verify.keypoints import LocalConfig, LocalStore, extract

    folder.mkdir(parents=True, exist_ok=True)
    order = np.arange(len(paths))[part::parts]
    ex, cfg = None, LocalConfig()
    for c in range(0, len(order), CHUNK):
        f = folder / f"{part}_{c}.npz"
        if f.exists():
            continue
        ex = ex or Extractor.create("efficientnet-lite2", threads=1)
        rows = order[c : c + CHUNK]
        views, feats = [], []
        for i in rows:
            img = load_image(paths[i], max_side=512)
            views.append(np.stack([ex.describe(v) for v in crop_views(img, "crops")]))
            feats.append(extract(img, cfg))
        st = LocalStore.from_features(cfg, feats)
        np.savez(f, rows=rows, views=np.stack(views), xy=st.xy, desc=st.desc, offsets=st.offsets)
        print(f"{folder.name}: {c + len(rows)}/{len(order)}", file=sys.stderr, flush=True)


def load_cache(folder: Path, n: int):
    """(views (n, V, D), LocalStore) of the n photos, from the chunk files."""
    from landmark_finder.verify.keypoints import LocalConfig, LocalFeatures, LocalStore

    views, feats = None, [None] * n
    for f in sorted(folder.glob("*.npz")):
        with np.load(f, allow_pickle=False) as z:
            rows, v = z["rows"], z["views"]
            if views is None:
                views = np.zeros((n, *v.shape[1:]), np.float32)
            views[rows] = v
            off = z["offsets"]
            for j, r in enumerate(rows):
                a, b = off[j], off[j + 1]
                feats[r] = LocalFeatures(z["xy"][a:b].astype(np.float32), z["desc"][a:b])
    missing = [i for i, x in enumerate(feats) if x is None]
    if views is None or missing:
        raise SystemExit(f"{folder}: {len(missing)} photos not described yet")
    return views, LocalStore.from_features(LocalConfig(), feats)


def make_index(shared: Path, gallery, views, local, after: bool):
    from landmark_finder.core.catalog import Catalog, load_catalog
    from landmark_finder.core.descriptors import Preprocessing
    from landmark_finder.recognition.index import Index, PhotoRecord

    cat = load_catalog(shared / "indian-monuments" / "catalog.csv")
    if after:
        cat = Catalog([replace(lm, site=SITE[0]) if lm.id in SITE[1] else lm for lm in cat])
    return Index(
        "efficientnet-lite2",
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

    sub = index.subset(rows) if rows is not None else index
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
        for method, colour in (("before", "tab:grey"), ("after", "tab:blue")):
            for verify, style in ((False, "--"), (True, "-")):
                pts = [r for r in rows if r["method"] == method and r["verify"] == verify]
                ys = [np.mean([r[key] for r in pts if r["k"] == k]) for k in shots]
                if pts:
                    label = f"{method}, {'verified' if verify else 'global only'}"
                    ax.plot(shots, ys, style, color=colour, marker="o", label=label)
        ax.set_xscale("log")
        ax.set_xticks(shots, [str(k) for k in shots])
        ax.set_xlabel("reference photos per landmark")
        ax.set_title(title)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[1].legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


def table(rows: list[dict]) -> str:
    out = [
        "| method | verified | refs/landmark | seeds | top-1 | coverage @99 % | AUROC "
        "| site answers (right) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted(
        {(r["method"], r["verify"], r["k"]) for r in rows},
        key=lambda t: (t[1], t[2] == "all", t[2] if t[2] != "all" else 0, t[0] != "before"),
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
    args = ap.parse_args()

    from landmark_finder.recognition.evaluate import few_shot_rows

    lists = photo_lists(args.shared)
    for which, items in lists.items():
        describe_all([p for _, p in items], args.cache / f"{which}_parts")
    gviews, glocal = load_cache(args.cache / "gallery_parts", len(lists["gallery"]))
    qviews, qlocal = load_cache(args.cache / "queries_parts", len(lists["queries"]))
    qlocal = [qlocal[i] for i in range(len(qlocal))]
    rows: list[dict] = []
    results = args.out.with_suffix(".json")
    for method in ("before", "after"):
        index = make_index(args.shared, lists["gallery"], gviews, glocal, method == "after")
        nv = index.n_views
        shots: list = [int(k) for k in args.shots.split(",")] + (["all"] if args.full else [])
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
    md = (
        "# Few-shot benchmark (Indian monuments, dev queries + unseen + distractors)\n\n"
        f"{table(rows)}\n\nMean over seeds (± SD of top-1). Written by bench/fewshot.py.\n"
    )
    args.out.write_text(md)
    plot(rows, args.out.with_name("fewshot_curve.png"))
    print(md)
    return 0


def few_shot_rows_of(index, k: int, seed: int, few_shot_rows) -> np.ndarray:
    """The rows `evaluate --max-refs-per-landmark k --seed seed` keeps (same random choice)."""

    class _R:  # few_shot_rows reads only recognizer.index
        pass

    r = _R()
    r.index = index
    return few_shot_rows(r, k, seed)


if __name__ == "__main__":
    sys.exit(main())

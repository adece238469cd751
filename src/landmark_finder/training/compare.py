"""Backbones (and trained models) side by side: same gallery, same queries, one run.

Each backbone builds its own index of the gallery with
:func:`landmark_finder.recognition.indexing.build_index`
and is scored by :func:`landmark_finder.recognition.evaluate.evaluate` — the very code behind
``index build`` and ``evaluate`` — so the numbers are the ones a user would get. With
``whitening="both"`` every backbone is also scored without the index-time whitening (same
descriptors, refitted calibration), to show what a trained head adds on its own.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from landmark_finder import defaults
from landmark_finder.core.catalog import Catalog
from landmark_finder.core.progress import Progress

WHITENING = ("on", "off", "both")


@dataclass
class CompareRow:
    backbone: str
    label: str  # short name for tables and charts
    whitening: bool
    top1: float
    gap: float
    auroc: float
    coverage_at_99: float
    latency_ms: float  # median per query: load, describe, search, decide
    params_m: float  # millions of parameters of the descriptor network
    size_mb: float  # float32 weights (parameters + buffers), MB
    dim: int
    input_size: int
    build_s: float  # describing the gallery and fitting the index
    n_gallery: int
    n_known: int
    n_unknown: int

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def short_label(name: str) -> str:
    if name.startswith("model:"):
        return "model:" + Path(name[6:]).name
    if name.startswith("hf:"):
        return "hf:" + Path(name[3:]).name
    return name


def network_size(name: str) -> tuple[float, float]:
    """(millions of parameters, MB of float32 weights) of a backbone or trained model, head
    included — what has to be shipped and run."""
    from landmark_finder import backbones
    from landmark_finder.backbones.sscd import split_name

    base, addons = split_name(name)  # a fused descriptor: its models' sizes added up
    bb = backbones.load(base)
    params = sum(p.numel() for p in bb.module.parameters())
    size = sum(t.numel() * t.element_size() for t in bb.module.state_dict().values())
    for addon in addons:
        p, b = addon.size()
        params, size = params + p, size + b
    return params / 1e6, size / 1e6


def default_size(name: str, size: int | None) -> int:
    """``size`` if given, else the trained model's input size, else the default input size."""
    if size:
        return int(size)
    if name.startswith("model:"):
        from landmark_finder.backbones.sscd import split_name
        from landmark_finder.training.model import read_config

        return int(read_config(split_name(name)[0])["input_size"])  # also model:DIR+sscd
    return defaults.INPUT_SIZE


def compare(
    gallery: Path,
    queries: list[Path],
    backbones: list[str],
    catalog: Catalog | None = None,
    size: int | None = None,
    whitening: str = "on",
    max_refs_per_landmark: int | None = None,
    seed: int = 0,
    distractors: Path | None = None,
    progress: Progress | None = None,
) -> list[CompareRow]:
    """One row per backbone (two with ``whitening="both"``), in the order given."""
    from landmark_finder.core.descriptors import Extractor, Preprocessing
    from landmark_finder.recognition.evaluate import evaluate
    from landmark_finder.recognition.index import Index
    from landmark_finder.recognition.indexing import IndexConfig, build_index
    from landmark_finder.recognition.recognizer import Recognizer

    if whitening not in WHITENING:
        raise ValueError(f"whitening must be one of {', '.join(WHITENING)}")
    if not backbones:
        raise ValueError("give at least one backbone to compare")
    modes = {"on": [True], "off": [False], "both": [True, False]}[whitening]
    rows: list[CompareRow] = []
    with tempfile.TemporaryDirectory(prefix="lf-compare-") as tmp:
        for i, name in enumerate(backbones):
            px = default_size(name, size)
            params_m, size_mb = network_size(name)
            ex = Extractor.create(name, Preprocessing(size=px))
            t0 = time.perf_counter()
            index, _ = build_index(
                Path(gallery),
                Path(tmp) / f"idx{i}",
                catalog,
                IndexConfig(name, ex.preprocessing, whiten=modes[0], local=None),
                distractors,
                progress=progress,
                extractor=ex,
            )  # backbones are compared on global descriptors
            build_s = time.perf_counter() - t0
            for w in modes:
                idx: Index = index
                if w != index.whiten:
                    idx = dataclasses.replace(index, whiten=w, _searcher=None)
                    idx.refit()
                rec = Recognizer(idx, ex)
                what = f"{short_label(name)}{'' if w else ' (no whitening)'}: queries"
                res, det = evaluate(
                    rec,
                    list(queries),
                    max_refs_per_landmark,
                    seed=seed,
                    progress=(lambda d, t, what=what: progress(d, t, what)) if progress else None,
                )
                rows.append(
                    CompareRow(
                        name,
                        short_label(name),
                        w,
                        res.top1_accuracy,
                        res.gap,
                        res.auroc,
                        res.coverage_at_99_precision,
                        res.latency_ms_p50,
                        params_m,
                        size_mb,
                        ex.dim,
                        px,
                        build_s,
                        det.n_gallery,
                        res.n_known,
                        res.n_unknown,
                    )
                )
    return rows


def write_chart(rows: list[CompareRow], path: Path, title: str = "") -> None:
    """Accuracy metrics (grouped bars) and latency/size per backbone, as one PNG."""
    import numpy as np
    from matplotlib.figure import Figure

    from landmark_finder.core.figures import save_figure

    names = [r.label + ("" if r.whitening else "\n(no whitening)") for r in rows]
    x = np.arange(len(rows))
    fig = Figure(figsize=(max(8, 2.4 * len(rows) + 3), 5.5), dpi=100)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    metrics = [("top-1", "top1"), ("GAP", "gap"), ("AUROC", "auroc")]
    w = 0.8 / len(metrics)
    for k, (label, attr) in enumerate(metrics):
        vals = [getattr(r, attr) for r in rows]
        bars = ax1.bar(x + (k - 1) * w, [0 if math.isnan(v) else v for v in vals], w, label=label)
        for b, v in zip(bars, vals, strict=False):
            ax1.text(
                b.get_x() + b.get_width() / 2,
                b.get_height() + 0.005,
                "n/a" if math.isnan(v) else f"{v:.3f}",
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
            )
    lo = min(
        [getattr(r, a) for r in rows for _, a in metrics if not math.isnan(getattr(r, a))] or [0]
    )
    ax1.set_ylim(max(0.0, lo - 0.1), 1.12)
    ax1.set_xticks(x, names, fontsize=8, rotation=15, ha="right")
    ax1.set_title("recognition (higher is better)")
    ax1.legend(loc="upper center", ncol=3, fontsize=8)
    ax1.grid(True, axis="y", alpha=0.3)
    bars = ax2.bar(x, [r.latency_ms for r in rows], 0.6, color="tab:gray")
    for b, r in zip(bars, rows, strict=False):
        ax2.text(
            b.get_x() + b.get_width() / 2,
            b.get_height(),
            f"{r.latency_ms:.0f} ms\n{r.params_m:.1f} M params\n{r.size_mb:.0f} MB",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax2.set_ylim(0, max(r.latency_ms for r in rows) * 1.45 + 1)
    ax2.set_xticks(x, names, fontsize=8, rotation=15, ha="right")
    ax2.set_title("latency per query (median)")
    ax2.grid(True, axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def write_csv(rows: list[CompareRow], path: Path) -> None:
    import csv
    import io

    from landmark_finder.training.model import write_atomic

    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0].to_dict()))
        w.writeheader()
        for r in rows:
            w.writerow(r.to_dict())
    write_atomic(Path(path), buf.getvalue().encode())

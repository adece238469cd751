"""Training curves: one CSV row and one refreshed PNG chart per epoch.

Both are rewritten atomically after every epoch, so a run stopped at any moment leaves curves
that match its checkpoint.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from landmark_finder.training.model import write_atomic


@dataclass
class EpochStats:
    epoch: int  # 0 = before training (the starting point)
    train_loss: float = math.nan
    train_acc: float = math.nan
    val_loss: float = math.nan
    val_acc: float = math.nan
    val_map: float = math.nan  # mean average precision of val photos against training photos
    val_top1: float = math.nan  # nearest training photo has the right landmark
    lr: float = math.nan
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EpochStats:
        kw = {}
        for f in fields(cls):
            v = d.get(f.name, "")
            kw[f.name] = (
                int(v) if f.name == "epoch" else (math.nan if v in ("", None) else float(v))
            )
        return cls(**kw)


def write_csv(path: Path, history: list[EpochStats]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    names = [f.name for f in fields(EpochStats)]
    w.writerow(names)
    for h in history:
        w.writerow(
            [
                ""
                if isinstance(v, float) and math.isnan(v)
                else (f"{v:.6g}" if isinstance(v, float) else v)
                for v in (getattr(h, n) for n in names)
            ]
        )
    write_atomic(Path(path), buf.getvalue().encode())


def read_csv(path: Path) -> list[EpochStats]:
    with open(path, newline="", encoding="utf-8") as f:
        return [EpochStats.from_dict(r) for r in csv.DictReader(f)]


def write_png(path: Path, history: list[EpochStats], title: str = "") -> None:
    """Four panels: loss, classification accuracy, validation retrieval, learning rate."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from landmark_finder.core.figures import save_figure

    ep = [h.epoch for h in history]
    fig = Figure(figsize=(10, 7), dpi=100)
    axes = fig.subplots(2, 2)
    panels = [
        (axes[0, 0], "loss", [("train", "train_loss"), ("validation", "val_loss")], False),
        (
            axes[0, 1],
            "classification accuracy",
            [("train", "train_acc"), ("validation", "val_acc")],
            False,
        ),
        (axes[1, 0], "validation retrieval", [("mAP", "val_map"), ("top-1", "val_top1")], False),
        (axes[1, 1], "learning rate", [("lr", "lr")], True),
    ]
    for ax, name, series, log in panels:
        drawn = 0
        for label, attr in series:
            pts = [
                (e, getattr(h, attr))
                for e, h in zip(ep, history, strict=False)
                if not math.isnan(getattr(h, attr))
            ]
            if pts:
                ax.plot(
                    [p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=label
                )
                drawn += 1
        if not drawn:
            ax.text(
                0.5,
                0.5,
                "not measured",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="gray",
            )
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if log and any(not math.isnan(h.lr) and h.lr > 0 for h in history):
            ax.set_yscale("log")
        if len(series) > 1 and drawn:
            ax.legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)

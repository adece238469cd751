"""``landmark-finder train`` and ``landmark-finder compare``: thin shells over
:mod:`landmark_finder.training`.

Registered in ``cli.py`` with one line each; kept here so the training options do not crowd the
main CLI module.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)


@contextmanager
def _bars(quiet: bool) -> Iterator[tuple]:
    """(progress callback, console): one bar per stage or epoch; a finished epoch's bar is
    replaced by the next one, and epoch summaries print above the bar."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=quiet,
    ) as p:
        current: dict[str, int] = {}

        def update(done: int, total: int, what: str = "working") -> None:
            if what not in current:
                for old in current.values():
                    p.remove_task(old)
                current.clear()
                current[what] = p.add_task(what, total=total)
            p.update(current[what], completed=done, total=total)

        yield update, p.console


def _fmt(v: float, digits: int = 3) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def train(
    dataset: Path = typer.Argument(
        ...,
        help="Folder with one sub-folder of photos per landmark (only training photos: keep your test photos out).",
    ),
    out_dir: Path = typer.Option(
        ..., "--out", "-o", help="Model directory to create (or to continue with --resume)."
    ),
    backbone: str | None = typer.Option(
        None, help="Pretrained backbone to start from [default: efficientnet-lite2]."
    ),
    mode: str | None = typer.Option(
        None,
        help="fast: frozen backbone, head trained on cached features (CPU-friendly); full: also train the backbone's last stages [default: fast].",
    ),
    loss: str | None = typer.Option(
        None, help="arcface, subcenter-arcface, or softmax (plain classifier) [default: arcface]."
    ),
    epochs: int | None = typer.Option(None, min=1, help="Maximum epochs [default: 40]."),
    batch_size: int | None = typer.Option(None, min=1, help="Photos per batch [default: 64]."),
    lr: float | None = typer.Option(
        None, min=0.0, help="Learning rate of the head [default: 0.001]."
    ),
    dim: int | None = typer.Option(None, min=1, help="Descriptor dimension [default: 512]."),
    hidden: int | None = typer.Option(
        None,
        min=0,
        help="Width of a residual hidden layer in the head (non-linear; a linear head is absorbed by the index-time whitening); 0 = linear [default: 0].",
    ),
    size: int | None = typer.Option(
        None, min=32, help="Long side of the network input in pixels [default: 352]."
    ),
    views: int | None = typer.Option(
        None,
        min=1,
        help="Fast mode: views cached per photo, the photo itself plus augmented ones [default: 8].",
    ),
    val_fraction: float | None = typer.Option(
        None,
        min=0.0,
        max=0.9,
        help="Share of each landmark's photos held out for validation (near-duplicates kept together) [default: 0.15].",
    ),
    val_landmarks: int | None = typer.Option(
        None,
        min=0,
        help="Validate instead on this many whole landmarks, left out of training: measures how the descriptor does on landmarks it never saw (choose the model for new landmarks this way) [default: 0].",
    ),
    patience: int | None = typer.Option(
        None, min=1, help="Early stopping: epochs without validation improvement [default: 8]."
    ),
    lr_patience: int | None = typer.Option(
        None,
        min=0,
        help="Reduce the learning rate after this many epochs without improvement [default: 2].",
    ),
    unfreeze: int | None = typer.Option(
        None, min=1, help="Full mode: backbone blocks to train, counted from the end [default: 2]."
    ),
    margin: float | None = typer.Option(
        None, min=0.0, help="ArcFace angular margin in radians [default: 0.3]."
    ),
    scale: float | None = typer.Option(None, min=1.0, help="ArcFace logit scale [default: 30]."),
    subcenters: int | None = typer.Option(
        None, min=1, help="Sub-centres per landmark for subcenter-arcface [default: 3]."
    ),
    init: str | None = typer.Option(
        None,
        help="Start of the projection: whitening (supervised whitening of the training views) or random [default: whitening].",
    ),
    landmarks: str | None = typer.Option(
        None, help="Comma-separated landmark folders to train on (default: all)."
    ),
    seed: int | None = typer.Option(
        None, help="Random seed (split, augmentation, sampling) [default: 0]."
    ),
    cache: Path | None = typer.Option(
        None, help="Folder for cached backbone features [default: the user cache]."
    ),
    threads: int | None = typer.Option(None, min=1, help="CPU threads [default: up to 2]."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the interrupted or finished run in --out (e.g. with more --epochs).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Fine-tune the descriptor on a folder-per-landmark collection (metric learning).

    Writes MODEL_DIR/model.safetensors + config.json (index with `index build --backbone model:MODEL_DIR`), history.csv and curves.png (loss, accuracy, validation retrieval, learning rate per epoch) and a resumable checkpoint; Ctrl-C saves the checkpoint first.
    """
    from landmark_finder.training.train import TrainConfig, TrainingInterrupted, checkpoint_config
    from landmark_finder.training.train import train as run

    given = dict(
        backbone=backbone,
        mode=mode,
        loss=loss,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        dim=dim,
        hidden=hidden,
        size=size,
        views=views,
        val_fraction=val_fraction,
        val_landmarks=val_landmarks,
        patience=patience,
        lr_patience=lr_patience,
        unfreeze=unfreeze,
        margin=margin,
        scale=scale,
        subcenters=subcenters,
        init=init,
        seed=seed,
        threads=threads,
        cache=str(cache) if cache else None,
        landmarks=[s.strip() for s in landmarks.split(",") if s.strip()] if landmarks else None,
    )
    given = {k: v for k, v in given.items() if v is not None}
    try:
        if resume:
            base = checkpoint_config(out_dir)
            cfg = TrainConfig.from_dict({**base.__dict__, **given})
            if Path(cfg.dataset).resolve() != dataset.resolve():
                _fail(f"{out_dir} was trained on {cfg.dataset}, not {dataset}")
        else:
            cfg = TrainConfig(dataset=str(dataset), out=str(out_dir), **given)
    except ValueError as e:
        _fail(str(e))

    table = Table(
        "epoch",
        "loss",
        "acc",
        "val loss",
        "val acc",
        "val mAP",
        "val top-1",
        "lr",
        "s",
        title=f"training {cfg.backbone} ({cfg.mode} mode, {cfg.loss})",
    )
    with _bars(quiet) as (cb, console):

        def on_epoch(s) -> None:
            if not quiet:
                console.print(
                    f"epoch {s.epoch:>3}  loss {_fmt(s.train_loss)}  acc {_fmt(s.train_acc)}  "
                    f"val mAP {_fmt(s.val_map)}  val top-1 {_fmt(s.val_top1)}  "
                    f"lr {s.lr:.2g}  {s.seconds:.1f}s",
                    highlight=False,
                    soft_wrap=True,
                )

        try:
            result = run(cfg, resume=resume, progress=cb, on_epoch=on_epoch)
        except TrainingInterrupted as e:
            _fail(str(e), code=130)
        except KeyboardInterrupt:
            _fail("interrupted before training started (cached features are kept)", code=130)
        except (ValueError, OSError) as e:
            _fail(str(e))
    for line in result.warnings[:20]:
        err.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    for s in result.history:
        table.add_row(
            str(s.epoch),
            _fmt(s.train_loss),
            _fmt(s.train_acc),
            _fmt(s.val_loss),
            _fmt(s.val_acc),
            _fmt(s.val_map),
            _fmt(s.val_top1),
            f"{s.lr:.2g}",
            f"{s.seconds:.1f}",
        )
    if not quiet:
        out.print(table)
    out.print(
        f"Trained on {result.n_train} photos of {len(result.classes)} landmarks "
        f"({result.n_val} held out) in {result.seconds:.0f} s; best epoch {result.best_epoch} "
        f"(validation mAP {_fmt(result.best_val_map)})"
        + ("; stopped early" if result.stopped_early else "")
        + f".\nModel: {out_dir}  (index it with: landmark-finder index build GALLERY "
        f"--backbone model:{out_dir} --size {cfg.size} -o INDEX)",
        highlight=False,
    )


def compare(
    gallery: Path = typer.Argument(..., help="Gallery folder (one sub-folder per landmark)."),
    queries: list[Path] = typer.Argument(..., help="Query folders, as for `evaluate`."),
    backbones: str = typer.Option(
        ...,
        "--backbones",
        "-b",
        help="Comma-separated backbones: registry names, hf:<dir>, model:<dir>.",
    ),
    catalog: Path | None = typer.Option(None, "--catalog", "-c", help="Catalog CSV."),
    size: int | None = typer.Option(
        None,
        min=32,
        help="Input size for every backbone [default: a trained model's own size, else 352].",
    ),
    whitening: str = typer.Option(
        "on", help="Index-time whitening: on, off, or both (two rows per backbone)."
    ),
    max_refs_per_landmark: int | None = typer.Option(
        None, min=1, help="Few-shot: keep at most K random reference photos per landmark."
    ),
    seed: int = typer.Option(0, help="Random seed for --max-refs-per-landmark."),
    distractors: Path | None = typer.Option(
        None,
        help="Non-landmark photos to calibrate each index with (keep them out of the queries).",
    ),
    chart: Path = typer.Option(Path("compare.png"), help="PNG chart to write."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Also write the table as CSV."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the rows as JSON lines instead of a table."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Compare backbones and trained models on the same data in one run: top-1, GAP, AUROC, latency, parameters and model size, as a table and a PNG chart."""
    from landmark_finder.core.catalog import CatalogError, load_catalog
    from landmark_finder.core.images import ImageLoadError
    from landmark_finder.recognition.index import IndexError_
    from landmark_finder.training.compare import compare as run
    from landmark_finder.training.compare import write_chart, write_csv

    names = [b.strip() for b in backbones.split(",") if b.strip()]
    try:
        cat = load_catalog(catalog) if catalog else None
        with _bars(quiet) as (cb, _):
            rows = run(
                gallery,
                queries,
                names,
                cat,
                size,
                whitening,
                max_refs_per_landmark,
                seed,
                distractors,
                progress=cb,
            )
        shots = (
            f", {max_refs_per_landmark} reference photos per landmark"
            if max_refs_per_landmark
            else ""
        )
        write_chart(rows, chart, f"{gallery}{shots}")
        if csv_path:
            write_csv(rows, csv_path)
    except (CatalogError, IndexError_, ImageLoadError, OSError, ValueError, RuntimeError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(r.to_dict()) + "\n")
        return
    t = Table(title="same gallery, same queries", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("backbone", overflow="fold", min_width=12)
    for name in ("whiten", "top-1", "GAP", "AUROC", "cov@99", "ms", "M par", "MB"):
        t.add_column(name, no_wrap=True)
    for r in rows:
        t.add_row(
            r.label,
            "yes" if r.whitening else "no",
            _fmt(r.top1),
            _fmt(r.gap),
            _fmt(r.auroc),
            _fmt(r.coverage_at_99),
            f"{r.latency_ms:.0f}",
            f"{r.params_m:.1f}",
            f"{r.size_mb:.1f}",
        )
    out.print(t)
    sizes = ", ".join(sorted({f"{r.input_size} px" for r in rows}))
    out.print(
        f"{rows[0].n_known} known-landmark and {rows[0].n_unknown} no-landmark queries; "
        f"{rows[0].n_gallery} reference photos; input {sizes}; cov@99 = share of known "
        f"queries answered at 99 % precision; ms = median latency per query; "
        f"chart: {chart}",
        highlight=False,
    )

"""``landmark-finder train`` and ``landmark-finder compare``: thin shells over
:mod:`landmark_finder.training`.

Registered in ``cli.py`` with one line each; kept here so the training options do not crowd the
main CLI module.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from landmark_finder.cli import kit
from landmark_finder.defaults import INPUT_SIZE
from landmark_finder.i18n import _, n_landmarks, n_photos
from landmark_finder.training.config import default


def _setting(name: str, text: str, **kw: Any) -> Any:
    """The option for one training setting: None unless given (so a resumed run keeps its
    checkpoint's settings), its help showing the default that lives in TrainConfig."""
    return typer.Option(None, help=text, show_default=str(default(name)), **kw)


def _fmt(v: float, digits: int = 3) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def train(
    dataset: Path = typer.Argument(
        ...,
        help="Folder with one sub-folder of photos per landmark (only training photos: keep your "
        "test photos out).",
    ),
    out_dir: Path = typer.Option(
        ..., "--out", "-o", help="Model directory to create (or to continue with --resume)."
    ),
    backbone: str | None = _setting("backbone", "Pretrained backbone to start from."),
    mode: str | None = _setting(
        "mode",
        "fast: frozen backbone, head trained on cached features (CPU-friendly); full: also "
        "train the backbone's last stages.",
    ),
    loss: str | None = _setting(
        "loss", "arcface, subcenter-arcface, or softmax (plain classifier)."
    ),
    epochs: int | None = _setting("epochs", "Maximum epochs.", min=1),
    batch_size: int | None = _setting("batch_size", "Photos per batch.", min=1),
    lr: float | None = _setting("lr", "Learning rate of the head.", min=0.0),
    dim: int | None = _setting("dim", "Descriptor dimension.", min=1),
    hidden: int | None = _setting(
        "hidden",
        "Width of a residual hidden layer in the head (non-linear; a linear head is absorbed "
        "by the index-time whitening); 0 = linear.",
        min=0,
    ),
    size: int | None = _setting("size", "Long side of the network input in pixels.", min=32),
    views: int | None = _setting(
        "views", "Fast mode: views cached per photo, the photo itself plus augmented ones.", min=1
    ),
    val_fraction: float | None = _setting(
        "val_fraction",
        "Share of each landmark's photos held out for validation (near-duplicates kept together).",
        min=0.0,
        max=0.9,
    ),
    val_landmarks: int | None = _setting(
        "val_landmarks",
        "Validate instead on this many whole landmarks, left out of training: measures how "
        "the descriptor does on landmarks it never saw (choose the model for new landmarks "
        "this way).",
        min=0,
    ),
    patience: int | None = _setting(
        "patience", "Early stopping: epochs without validation improvement.", min=1
    ),
    lr_patience: int | None = _setting(
        "lr_patience", "Reduce the learning rate after this many epochs without improvement.", min=0
    ),
    unfreeze: int | None = _setting(
        "unfreeze", "Full mode: backbone blocks to train, counted from the end.", min=1
    ),
    margin: float | None = _setting("margin", "ArcFace angular margin in radians.", min=0.0),
    scale: float | None = _setting("scale", "ArcFace logit scale.", min=1.0),
    subcenters: int | None = _setting(
        "subcenters", "Sub-centres per landmark for subcenter-arcface.", min=1
    ),
    init: str | None = _setting(
        "init",
        "Start of the projection: whitening (supervised whitening of the training views) or "
        "random.",
    ),
    landmarks: str | None = typer.Option(
        None, help="Comma-separated landmark folders to train on (default: all)."
    ),
    seed: int | None = _setting("seed", "Random seed (split, augmentation, sampling)."),
    cache: Path | None = typer.Option(
        None, help="Folder for cached backbone features.", show_default="the user cache"
    ),
    threads: int | None = typer.Option(None, min=1, help="CPU threads.", show_default="up to 2"),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the interrupted or finished run in --out (e.g. with more --epochs).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    lang: str | None = kit.LANG,
) -> None:
    """Fine-tune the descriptor on a folder-per-landmark collection (metric learning).

    Writes MODEL_DIR/model.safetensors + config.json (index with `index build --backbone
    model:MODEL_DIR`), history.csv and curves.png (loss, accuracy, validation retrieval, learning
    rate per epoch) and a resumable checkpoint; Ctrl-C saves the checkpoint first.
    """
    from landmark_finder.training.train import TrainConfig, TrainingInterrupted, checkpoint_config
    from landmark_finder.training.train import train as run

    kit.use_language(lang)
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
                text = _("{model} was trained on {trained}, not {given}")
                kit.fail(text.format(model=out_dir, trained=cfg.dataset, given=dataset))
        else:
            cfg = TrainConfig(dataset=str(dataset), out=str(out_dir), **given)
    except ValueError as e:
        kit.fail(str(e))

    table = Table(
        _("epoch"),
        _("loss"),
        _("acc"),
        _("val loss"),
        _("val acc"),
        _("val mAP"),
        _("val top-1"),
        _("lr"),
        "s",
        title=_("training {backbone} ({mode} mode, {loss})").format(
            backbone=cfg.backbone, mode=cfg.mode, loss=cfg.loss
        ),
    )
    with kit.progress_bar(quiet, one_at_a_time=True) as cb:

        def on_epoch(s) -> None:
            if not quiet:
                text = _(
                    "epoch {epoch}  loss {loss}  acc {acc}  val mAP {map}  val top-1 {top1}  "
                    "lr {lr}  {seconds}s"
                )
                kit.err.print(
                    text.format(
                        epoch=f"{s.epoch:>3}",
                        loss=_fmt(s.train_loss),
                        acc=_fmt(s.train_acc),
                        map=_fmt(s.val_map),
                        top1=_fmt(s.val_top1),
                        lr=f"{s.lr:.2g}",
                        seconds=f"{s.seconds:.1f}",
                    ),
                    highlight=False,
                    soft_wrap=True,
                )

        try:
            result = run(cfg, resume=resume, progress=cb, on_epoch=on_epoch)
        except TrainingInterrupted as e:
            kit.fail(str(e), code=kit.EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            kit.fail(
                _("interrupted before training started (cached features are kept)"),
                code=kit.EXIT_INTERRUPTED,
            )
        except (ValueError, OSError) as e:
            kit.fail(str(e))
    kit.print_warnings(result.warnings, _("warning"))
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
        kit.out.print(table)
    text = _(
        "Trained on {photos} of {landmarks} ({held_out} held out) in {seconds} s; best epoch "
        "{best} (validation mAP {map})"
    ).format(
        photos=n_photos(result.n_train),
        landmarks=n_landmarks(len(result.classes)),
        held_out=result.n_val,
        seconds=f"{result.seconds:.0f}",
        best=result.best_epoch,
        map=_fmt(result.best_val_map),
    )
    if result.stopped_early:
        text += "; " + _("stopped early")
    command = (
        f"landmark-finder index build GALLERY --backbone model:{out_dir} --size {cfg.size} -o INDEX"
    )
    text += ".\n" + _("Model: {model}  (index it with: {command})").format(
        model=out_dir, command=command
    )
    kit.out.print(text, highlight=False)


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
        help="Input size for every backbone.",
        show_default=f"a trained model's own size, else {INPUT_SIZE}",
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
    lang: str | None = kit.LANG,
) -> None:
    """Compare backbones and trained models on the same data in one run: top-1, GAP, AUROC, latency,
    parameters and model size, as a table and a PNG chart."""
    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.training.compare import compare as run
    from landmark_finder.training.compare import write_chart, write_csv

    kit.use_language(lang)
    names = [b.strip() for b in backbones.split(",") if b.strip()]
    try:
        with kit.library_errors(RuntimeError):
            cat = load_catalog(catalog) if catalog else None
            with kit.progress_bar(quiet, one_at_a_time=True) as cb:
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
            shots = ""
            if max_refs_per_landmark:
                shots = ", " + _("{n} reference photos per landmark").format(
                    n=max_refs_per_landmark
                )
            write_chart(rows, chart, f"{gallery}{shots}")
            if csv_path:
                write_csv(rows, csv_path)
    except KeyboardInterrupt:
        kit.fail(_("interrupted"), code=kit.EXIT_INTERRUPTED)
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(r.to_dict()) + "\n")
        return
    t = Table(title=_("same gallery, same queries"), box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column(_("backbone"), overflow="fold", min_width=12)
    for name in (_("whiten"), "top-1", "GAP", "AUROC", "cov@99", "ms", _("M par"), "MB"):
        t.add_column(name, no_wrap=True)
    for r in rows:
        t.add_row(
            r.label,
            _("yes") if r.whitening else _("no"),
            _fmt(r.top1),
            _fmt(r.gap),
            _fmt(r.auroc),
            _fmt(r.coverage_at_99),
            f"{r.latency_ms:.0f}",
            f"{r.params_m:.1f}",
            f"{r.size_mb:.1f}",
        )
    kit.out.print(t)
    sizes = ", ".join(sorted({f"{r.input_size} px" for r in rows}))
    text = _(
        "{known} known-landmark and {unknown} no-landmark queries; {gallery} reference photos; "
        "input {sizes}; cov@99 = share of known queries answered at 99 % precision; ms = median "
        "latency per query; chart: {chart}"
    )
    text = text.format(
        known=rows[0].n_known,
        unknown=rows[0].n_unknown,
        gallery=rows[0].n_gallery,
        sizes=sizes,
        chart=chart,
    )
    kit.out.print(text, highlight=False)

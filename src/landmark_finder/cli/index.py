"""``landmark-finder index build|add|remove|compact|refit|upgrade|info``: a gallery index (a
thin shell over :mod:`landmark_finder.recognition.indexing` and ``.maintenance``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from landmark_finder import defaults
from landmark_finder.cli.indexinfo import info_rows
from landmark_finder.cli.kit import (
    LANG,
    err,
    fail,
    library_errors,
    out,
    print_warnings,
    progress_bar,
    use_language,
)
from landmark_finder.i18n import _, n_landmarks, n_photos, ngettext

app = typer.Typer(help="Build and update a gallery index.", no_args_is_help=True)

WORKERS_HELP = "Processes describing photos [default: every core]; the index is the same for any N."
NO_WAIT_HELP = "Fail at once if another process is writing the index, instead of waiting."
REFIT_HELP = (
    "Refit the decision model now (--refit), or not until `landmark-finder index refit` "
    f"(--no-refit). Default: when the photos changed since the last fit reach "
    f"{defaults.REFIT_SHARE:.0%} of it."
)
RAY_HELP = (
    "Describe the photos on a Ray cluster: its address (`auto` on a cluster node, "
    "`ray://HEAD:10001` from outside), or `local` to start a Ray instance on this machine. "
    "Every node must see the photos at the same path."
)


def _write_options(
    workers: int | None, no_wait: bool, refit: bool | None = None, ray: str | None = None
):
    """How this command writes: describing processes (or a Ray cluster), waiting for another
    writer, refitting."""
    from landmark_finder.recognition.indexing import WriteOptions

    def on_wait(message: str) -> None:
        err.print(f"{message} ...", highlight=False, markup=False, soft_wrap=True)

    ray_target = None if ray is None else ("" if ray.strip().lower() == "local" else ray)
    return WriteOptions(workers, not no_wait, on_wait, refit, ray_target)


@app.command("build")
def index_build(
    gallery: Path = typer.Argument(
        ...,
        help="Folder with one sub-folder of reference photos per landmark (folder name = landmark "
        "id).",
    ),
    catalog: Path | None = typer.Option(
        None,
        "--catalog",
        "-c",
        help="Catalog CSV (id,name,address,latitude,longitude,...) or the headerless index,name "
        "format.",
    ),
    out_dir: Path = typer.Option(
        ..., "--out", "-o", help="Index directory to create or replace (atomically)."
    ),
    backbone: str = typer.Option(
        defaults.BACKBONE,
        help="Descriptor network: see `landmark-finder backbones`, or hf:<dir-or-repo-id>; "
        "add +sscd (e.g. efficientnet-lite2+sscd) to fuse a second descriptor, for galleries "
        "with few photos per landmark.",
    ),
    distractors: Path | None = typer.Option(
        None, help="Folder of photos with no landmark, used to calibrate the 'unknown' answer."
    ),
    model: Path | None = typer.Option(
        None,
        "--model",
        help="A model trained with `landmark-finder train` (same as --backbone model:DIR).",
    ),
    size: int | None = typer.Option(
        None,
        help="Long side in pixels photos are resized to.",
        show_default=f"the model's training size, else {defaults.INPUT_SIZE}",
    ),
    flip: bool = typer.Option(
        False, help="Test-time augmentation: add the mirrored photo's descriptor."
    ),
    scales: str = typer.Option(
        "1", help="Test-time augmentation: comma-separated scales, e.g. 0.75,1,1.25."
    ),
    views: str = typer.Option(
        "full",
        help="full: one descriptor per photo; crops: also five crops of every photo, on both "
        "sides of the search (for landmarks with few reference photos; 6x slower to describe).",
    ),
    approximate: bool = typer.Option(
        False, help="Approximate search (faiss HNSW) for very large galleries."
    ),
    whiten: bool = typer.Option(
        True, help="Learned whitening fitted on the gallery (recommended)."
    ),
    local_features: str = typer.Option(
        defaults.LOCAL_FEATURES,
        "--local-features",
        help="Keypoints stored for geometric verification: sift (best), orb (faster to match, "
        "weaker) or none.",
    ),
    max_keypoints: int = typer.Option(
        defaults.MAX_KEYPOINTS,
        "--max-keypoints",
        min=8,
        help="Keypoints stored per gallery photo, its strongest (36 bytes each; raw SIFT: 132); "
        f"query photos use up to {defaults.QUERY_KEYPOINTS}.",
    ),
    compact_keypoints: bool = typer.Option(
        True,
        "--compact-keypoints/--raw-keypoints",
        help=f"Store SIFT descriptors as {defaults.KEYPOINT_CODE_BYTES}-byte codes (product "
        "quantisation; the verified benchmark unchanged) or raw (128 bytes).",
    ),
    workers: int | None = typer.Option(None, "--workers", "-j", min=1, help=WORKERS_HELP),
    ray: str | None = typer.Option(None, "--ray", metavar="ADDRESS|local", help=RAY_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    lang: str | None = LANG,
) -> None:
    """Describe every gallery photo and write a self-contained index."""
    use_language(lang)
    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.core.descriptors import Preprocessing
    from landmark_finder.recognition.indexing import IndexConfig, build_index
    from landmark_finder.verify.keypoints import LocalConfig

    with library_errors():
        cat = load_catalog(catalog) if catalog else None
        if model is not None:
            backbone = f"model:{model.resolve()}"
        if backbone.startswith("model:"):  # its training size, also for model:DIR+sscd
            from landmark_finder.backbones.sscd import split_name
            from landmark_finder.training.model import model_preprocessing

            size = size or model_preprocessing(split_name(backbone)[0]).size
        from landmark_finder.core.views import view_boxes

        view_boxes(views)  # a clear error for an unknown view set, before any work
        pre = Preprocessing(
            size=size or defaults.INPUT_SIZE,
            flip=flip,
            scales=tuple(float(s) for s in scales.split(",")),
            views=views,
        )
        local = (
            None
            if local_features == "none"
            else LocalConfig(
                local_features,
                max_keypoints,
                codes=defaults.KEYPOINT_CODE_BYTES if compact_keypoints else 0,
            )
        )
        with progress_bar(quiet) as cb:
            config = IndexConfig(backbone, pre, approximate, whiten, local)
            opts = _write_options(workers, no_wait, ray=ray)
            index, report = build_index(
                gallery, out_dir, cat, config, distractors, progress=cb, options=opts
            )
    print_warnings(report.warnings, _("warning"))
    print_warnings(report.skipped, _("skipped"))
    text = _("Indexed {photos} of {landmarks} ({n} in the catalog) with {backbone} → {out}")
    text = text.format(
        photos=n_photos(report.n_photos),
        landmarks=n_landmarks(report.n_landmarks),
        n=len(index.catalog),
        backbone=index.backbone,
        out=out_dir,
    )
    if report.n_distractors:
        n = report.n_distractors
        text += "; " + ngettext("{n} distractor", "{n} distractors", n).format(n=n)
    text += "; " + _("cross-validated top-1 on the gallery {score}").format(
        score=f"{report.cv_top1:.3f}"
    )
    out.print(text, highlight=False)


@app.command("add")
def index_add(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    paths: list[Path] = typer.Argument(
        ...,
        help="Photos or folders. With --landmark, all are photos of that landmark; without, each "
        "is a gallery folder (one sub-folder per landmark).",
    ),
    landmark: str | None = typer.Option(None, help="Landmark id the photos show."),
    catalog: Path | None = typer.Option(
        None, "--catalog", "-c", help="Catalog CSV with rows for new landmarks."
    ),
    workers: int | None = typer.Option(None, "--workers", "-j", min=1, help=WORKERS_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    refit: bool | None = typer.Option(
        None, "--refit/--no-refit", help=REFIT_HELP, show_default=False
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    lang: str | None = LANG,
) -> None:
    """Add reference photos (of new or known landmarks) without rebuilding the index."""
    use_language(lang)
    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.core.gallery import scan_gallery
    from landmark_finder.core.images import iter_image_files
    from landmark_finder.recognition.indexing import add_photos

    with library_errors():
        photos = []
        for p in paths:
            if landmark:
                photos += [(landmark, f) for f in (iter_image_files(p) if p.is_dir() else [p])]
            else:
                photos += scan_gallery(p).photos
        cat = load_catalog(catalog) if catalog else None
        with progress_bar(quiet) as cb:
            opts = _write_options(workers, no_wait, refit)
            report = add_photos(index_dir, photos, cat, progress=cb, options=opts)
    print_warnings(report.warnings, _("warning"))
    print_warnings(report.skipped, _("skipped"))
    out.print(_index_has(report), highlight=False)
    _print_model_kept(report)


@app.command("remove")
def index_remove(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    landmark: list[str] = typer.Option(
        [], "--landmark", "-l", help="Remove all photos of this landmark (repeatable)."
    ),
    photo: list[Path] = typer.Option(
        [], "--photo", "-p", help="Remove this reference photo, by path or content (repeatable)."
    ),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    refit: bool | None = typer.Option(
        None, "--refit/--no-refit", help=REFIT_HELP, show_default=False
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    lang: str | None = LANG,
) -> None:
    """Remove reference photos; catalog rows stay (a landmark without photos is never predicted)."""
    from landmark_finder.recognition.indexing import remove_photos

    use_language(lang)
    if not landmark and not photo:
        fail(_("nothing to remove: give --landmark and/or --photo"))
    with library_errors():
        with progress_bar(quiet) as cb:
            opts = _write_options(None, no_wait, refit)
            n, report = remove_photos(index_dir, landmark, photo, progress=cb, options=opts)
    if n:
        removed = ngettext("Removed {n} photo.", "Removed {n} photos.", n).format(n=n)
        out.print(f"{removed} {_index_has(report)}", highlight=False)
        _print_model_kept(report)
    else:
        out.print(_("Nothing matched; index unchanged."), highlight=False)


def _print_model_kept(report) -> None:
    """Say so when a change kept the fitted decision model (the default for small changes)."""
    if not report.refitted and report.changed_since_fit:
        text = _(
            "Decision model kept: {changed} of the {fitted} photos it was fitted on changed "
            "since; it is refitted when {due} have (or run `landmark-finder index refit`)."
        )
        out.print(
            text.format(
                changed=report.changed_since_fit,
                fitted=report.fitted_photos,
                due=report.refit_after,
            ),
            highlight=False,
        )


def _index_has(report) -> str:
    return _("The index now has {photos} of {landmarks}.").format(
        photos=n_photos(report.n_photos), landmarks=n_landmarks(report.n_landmarks)
    )


@app.command("compact")
def index_compact(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    lang: str | None = LANG,
) -> None:
    """Merge the index's segments into one, dropping removed photos' data."""
    from landmark_finder.recognition.maintenance import compact_index

    use_language(lang)
    with library_errors():
        before, n = compact_index(index_dir, _write_options(None, no_wait))
    text = ngettext(
        "Compacted {n} segment into 1 ({photos}).",
        "Compacted {n} segments into 1 ({photos}).",
        before,
    )
    out.print(text.format(n=before, photos=n_photos(n)), highlight=False)


@app.command("refit")
def index_refit(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    lang: str | None = LANG,
) -> None:
    """Refit whitening and calibration (after changes made with --no-refit)."""
    from landmark_finder.recognition.maintenance import refit_index

    use_language(lang)
    with library_errors(), progress_bar(quiet) as cb:
        report = refit_index(index_dir, cb, _write_options(None, no_wait))
    text = _("Refitted on {photos} of {landmarks}; cross-validated top-1 {score}").format(
        photos=n_photos(report.n_photos),
        landmarks=n_landmarks(report.n_landmarks),
        score=f"{report.cv_top1:.3f}",
    )
    out.print(text, highlight=False)


@app.command("upgrade")
def index_upgrade(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    lang: str | None = LANG,
) -> None:
    """Convert an index written by an older landmark-finder (format 1) to segments (format 2)."""
    from landmark_finder.recognition.maintenance import upgrade_index

    use_language(lang)
    with library_errors():
        changed = upgrade_index(index_dir, _write_options(None, no_wait))
    text = _("Upgraded {index} to format 2.") if changed else _("{index} is already format 2.")
    out.print(text.format(index=index_dir), highlight=False)


@app.command("info")
def index_info(
    index_dir: Path = typer.Argument(..., help="Index directory."), lang: str | None = LANG
) -> None:
    """Show what an index contains and how it was built."""
    from landmark_finder.recognition.index import Index

    use_language(lang)
    with library_errors():
        idx = Index.open(index_dir)
    t = Table(show_header=False)
    for k, v in info_rows(idx):
        t.add_row(k, v)
    out.print(t)

"""``landmark-finder`` command line: a thin shell over the library API.

Machine-readable output (``--json``) goes to stdout; progress bars, warnings and tables go to
stderr/stdout through Rich, so ``--json`` output can be piped.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from landmark_finder.core.progress import progress_bar

app = typer.Typer(
    help="Name the landmark in a photo from its pixels: retrieval over your reference photos, "
    "with an honest 'unknown'.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="Build and update a gallery index.", no_args_is_help=True)
app.add_typer(index_app, name="index")

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def library_errors() -> Iterator[None]:
    """Turn the library's expected errors into one red line and exit code 2, not a traceback."""
    from landmark_finder.core.catalog import CatalogError
    from landmark_finder.core.images import ImageLoadError
    from landmark_finder.recognition.index import IndexError_

    try:
        yield
    except (CatalogError, IndexError_, ImageLoadError, OSError, ValueError) as e:
        fail(str(e))


def _print_warnings(lines: list[str], title: str, limit: int = 20) -> None:
    for line in lines[:limit]:
        err.print(f"{title}: {line}", highlight=False, markup=False, soft_wrap=True)
    if len(lines) > limit:
        err.print(f"{title}: ... and {len(lines) - limit} more", markup=False)


# --- index -----------------------------------------------------------------------------------

WORKERS_HELP = "Processes describing photos [default: every core]; the index is the same for any N."
NO_WAIT_HELP = "Fail at once if another process is writing the index, instead of waiting."
NO_REFIT_HELP = "Skip refitting the decision model (fast); run `landmark-finder index refit` later."


def _write_options(workers: int | None, no_wait: bool, refit: bool = True):
    from landmark_finder.recognition.indexing import WriteOptions

    def on_wait(message: str) -> None:
        err.print(f"{message} ...", highlight=False, markup=False, soft_wrap=True)

    return WriteOptions(workers, not no_wait, on_wait, refit)


@index_app.command("build")
def index_build(
    gallery: Path = typer.Argument(
        ...,
        help="Folder with one sub-folder of reference photos per landmark (folder name = landmark id).",
    ),
    catalog: Path | None = typer.Option(
        None,
        "--catalog",
        "-c",
        help="Catalog CSV (id,name,address,latitude,longitude,...) or the headerless index,name format.",
    ),
    out_dir: Path = typer.Option(
        ..., "--out", "-o", help="Index directory to create or replace (atomically)."
    ),
    backbone: str = typer.Option(
        "efficientnet-lite2",
        help="Descriptor network: see `landmark-finder backbones`, or hf:<dir-or-repo-id>.",
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
        help="Long side in pixels photos are resized to [default: the model's training size, else 352].",
    ),
    flip: bool = typer.Option(
        False, help="Test-time augmentation: add the mirrored photo's descriptor."
    ),
    scales: str = typer.Option(
        "1", help="Test-time augmentation: comma-separated scales, e.g. 0.75,1,1.25."
    ),
    approximate: bool = typer.Option(
        False, help="Approximate search (faiss HNSW) for very large galleries."
    ),
    whiten: bool = typer.Option(
        True, help="Learned whitening fitted on the gallery (recommended)."
    ),
    local_features: str = typer.Option(
        "sift",
        "--local-features",
        help="Keypoints stored for geometric verification: sift (best), orb (4x smaller, faster, weaker) or none.",
    ),
    max_keypoints: int = typer.Option(
        1000,
        "--max-keypoints",
        min=8,
        help="Keypoints kept per photo (SIFT: 132 bytes each, ORB: 36).",
    ),
    workers: int | None = typer.Option(None, "--workers", "-j", min=1, help=WORKERS_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Describe every gallery photo and write a self-contained index."""
    from landmark_finder.core.catalog import load_catalog
    from landmark_finder.core.descriptors import Preprocessing
    from landmark_finder.recognition.indexing import build_index
    from landmark_finder.verify.keypoints import LocalConfig

    with library_errors():
        cat = load_catalog(catalog) if catalog else None
        if model is not None:
            from landmark_finder.training.model import model_preprocessing

            backbone = f"model:{model.resolve()}"
            size = size or model_preprocessing(model).size
        pre = Preprocessing(
            size=size or 352, flip=flip, scales=tuple(float(s) for s in scales.split(","))
        )
        local = None if local_features == "none" else LocalConfig(local_features, max_keypoints)
        with progress_bar(quiet) as cb:
            index, report = build_index(
                gallery,
                out_dir,
                cat,
                backbone,
                pre,
                distractors,
                approximate,
                whiten,
                progress=cb,
                local=local,
                options=_write_options(workers, no_wait),
            )
    _print_warnings(report.warnings, "warning")
    _print_warnings(report.skipped, "skipped")
    out.print(
        f"Indexed {report.n_photos} photos of {report.n_landmarks} landmarks "
        f"({len(index.catalog)} in the catalog) with {index.backbone} → {out_dir}"
        + (f"; {report.n_distractors} distractors" if report.n_distractors else "")
        + f"; cross-validated top-1 on the gallery {report.cv_top1:.3f}",
        highlight=False,
    )


@index_app.command("add")
def index_add(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    paths: list[Path] = typer.Argument(
        ...,
        help="Photos or folders. With --landmark, all are photos of that landmark; without, each is a gallery folder (one sub-folder per landmark).",
    ),
    landmark: str | None = typer.Option(None, help="Landmark id the photos show."),
    catalog: Path | None = typer.Option(
        None, "--catalog", "-c", help="Catalog CSV with rows for new landmarks."
    ),
    workers: int | None = typer.Option(None, "--workers", "-j", min=1, help=WORKERS_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    no_refit: bool = typer.Option(False, "--no-refit", help=NO_REFIT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Add reference photos (of new or known landmarks) without rebuilding the index."""
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
            opts = _write_options(workers, no_wait, not no_refit)
            report = add_photos(index_dir, photos, cat, progress=cb, options=opts)
    _print_warnings(report.warnings, "warning")
    _print_warnings(report.skipped, "skipped")
    out.print(
        f"Index now has {report.n_photos} photos of {report.n_landmarks} landmarks.",
        highlight=False,
    )


@index_app.command("remove")
def index_remove(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    landmark: list[str] = typer.Option(
        [], "--landmark", "-l", help="Remove all photos of this landmark (repeatable)."
    ),
    photo: list[Path] = typer.Option(
        [], "--photo", "-p", help="Remove this reference photo, by path or content (repeatable)."
    ),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    no_refit: bool = typer.Option(False, "--no-refit", help=NO_REFIT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Remove reference photos; catalog rows stay (a landmark without photos is never predicted)."""
    from landmark_finder.recognition.indexing import remove_photos

    if not landmark and not photo:
        fail("nothing to remove: give --landmark and/or --photo")
    with library_errors():
        with progress_bar(quiet) as cb:
            opts = _write_options(None, no_wait, not no_refit)
            n, report = remove_photos(index_dir, landmark, photo, progress=cb, options=opts)
    out.print(
        f"Removed {n} photos; index has {report.n_photos} photos of {report.n_landmarks} landmarks."
        if n
        else "Nothing matched; index unchanged.",
        highlight=False,
    )


@index_app.command("compact")
def index_compact(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
) -> None:
    """Merge the index's segments into one, dropping removed photos' data."""
    from landmark_finder.recognition.indexing import compact_index

    with library_errors():
        before, n = compact_index(index_dir, _write_options(None, no_wait))
    out.print(f"Compacted {before} segments into 1 ({n} photos).", highlight=False)


@index_app.command("refit")
def index_refit(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Refit whitening and calibration (after changes made with --no-refit)."""
    from landmark_finder.recognition.indexing import refit_index

    with library_errors(), progress_bar(quiet) as cb:
        report = refit_index(index_dir, cb, _write_options(None, no_wait))
    out.print(
        f"Refitted on {report.n_photos} photos of {report.n_landmarks} landmarks; "
        f"cross-validated top-1 {report.cv_top1:.3f}",
        highlight=False,
    )


@index_app.command("upgrade")
def index_upgrade(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
) -> None:
    """Convert an index written by an older landmark-finder (format 1) to segments (format 2)."""
    from landmark_finder.recognition.indexing import upgrade_index

    with library_errors():
        changed = upgrade_index(index_dir, _write_options(None, no_wait))
    out.print(
        f"Upgraded {index_dir} to format 2." if changed else f"{index_dir} is already format 2.",
        highlight=False,
    )


@index_app.command("info")
def index_info(index_dir: Path = typer.Argument(..., help="Index directory.")) -> None:
    """Show what an index contains and how it was built."""
    from landmark_finder.recognition.index import Index

    with library_errors():
        idx = Index.open(index_dir)
    t = Table(show_header=False)
    ids = idx.landmark_ids
    rows = [
        ("backbone", idx.backbone),
        ("weights", idx.weights_hash[:16]),
        ("preprocessing", json.dumps(idx.preprocessing.to_dict())),
        ("photos", str(len(idx.records))),
        ("landmarks with photos", str(len(ids))),
        ("catalog rows", str(len(idx.catalog))),
        (
            "catalog rows without photos",
            ", ".join(lm.id for lm in idx.catalog if lm.id not in set(ids)) or "-",
        ),
        ("whitening", "yes" if idx.whitening is not None else "no"),
        ("search", "approximate (HNSW)" if idx.approximate else "exact"),
        ("distractors", str(0 if idx.distractors is None else len(idx.distractors))),
        ("calibration", json.dumps(idx.calibration_report)),
        (
            "local features",
            "none (no geometric verification)"
            if idx.local is None
            else f"{idx.local.config.method}, up to {idx.local.config.max_keypoints} per photo, "
            f"{idx.local.bytes_per_photo / 1024:.0f} KiB per photo on average",
        ),
        ("verification", "-" if idx.verified is None else _verification_line(idx.verified)),
        ("unknown below confidence", f"{idx.calibrator.threshold:.2f}"),
        (
            "storage",
            f"format 1 ({idx.version}); `landmark-finder index upgrade` converts it"
            if idx.version.startswith("v-")
            else f"format 2, {len(idx.segments)} segment(s), "
            f"{sum(len(s.deleted) for s in idx.segments)} removed photo(s) awaiting compaction",
        ),
        (
            "refit pending",
            "yes: run `landmark-finder index refit`" if idx.refit_pending else "no",
        ),
        ("created", idx.created),
    ]
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)


def _verification_line(v) -> str:
    c, f = v.config, v.fusion
    return (
        f"top {c.landmarks} landmarks × {c.refs} references, ratio {c.ratio}; score bonus "
        f"{f.weight:g}·log1p(inliers − {f.offset:g}); chance level {v.chance_inliers:.0f} inliers; "
        f"cross-validated top-1 {v.cv_top1:.3f} (global alone {v.cv_top1_global:.3f})"
    )


# --- recognize / evaluate ----------------------------------------------------------------------


VERIFY_HELP = (
    "Geometric verification of the top candidates (default: on when the index has local features)."
)
VERIFY_TOP_HELP = "How many top landmarks to verify (default: the index's setting, 3)."


def _open(
    index_dir: Path,
    backbone: str | None = None,
    verify: bool | None = None,
    verify_top: int | None = None,
):
    from landmark_finder.recognition.recognizer import Recognizer

    with library_errors():
        return Recognizer.open(
            index_dir, backbone=backbone, verify=verify, verify_landmarks=verify_top
        )


@app.command()
def recognize(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    images: list[Path] = typer.Argument(..., help="Photos, or folders searched recursively."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Candidates to list per photo."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per photo per line."),
    backbone: str | None = typer.Option(None, help="Fail unless the index uses this backbone."),
    threshold: float | None = typer.Option(
        None,
        min=0.0,
        max=1.0,
        help="Answer 'unknown' below this confidence (default: the index's, 0.5).",
    ),
    heatmap_dir: Path | None = typer.Option(
        None,
        "--heatmap-dir",
        help='Write a heatmap PNG per photo (what makes it match its top candidate) here; JSON gains "heatmap": path.',
    ),
    evidence_dir: Path | None = typer.Option(
        None,
        "--evidence-dir",
        help='Write a PNG per photo here: the photo beside its best-matching reference photo, inlier matches drawn; JSON evidence gains "picture": path.',
    ),
    verify: bool | None = typer.Option(
        None, "--verify/--no-verify", help=VERIFY_HELP, show_default=False
    ),
    verify_top: int | None = typer.Option(None, "--verify-top", min=1, help=VERIFY_TOP_HELP),
) -> None:
    """Name the landmark in each photo, or say it is unknown."""
    from landmark_finder.core.images import iter_image_files

    rec = _open(index_dir, backbone, verify, verify_top)
    if threshold is not None:
        rec.index.calibrator.threshold = threshold
    files: list[Path] = []
    for p in images:
        files += iter_image_files(p) if p.is_dir() else [p]
    heatmaps = _PictureDir(heatmap_dir) if heatmap_dir else None
    evidence = _PictureDir(evidence_dir) if evidence_dir else None
    for f in files:
        r = rec.recognize(f, top_k=top_k)
        d = r.to_dict()
        if heatmaps is not None and r.candidates:
            d["heatmap"] = heatmaps.heatmap(rec, f, r.candidates[0].landmark.id)
        if evidence is not None and d["evidence"] is not None:
            d["evidence"]["picture"] = evidence.evidence(rec, f, r)
        if as_json:
            sys.stdout.write(json.dumps(d, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            _print_recognition(f, r)
            for what, path in (
                ("heatmap", d.get("heatmap")),
                ("evidence", (d["evidence"] or {}).get("picture")),
            ):
                if path:
                    out.print(f"    {what}: {path}", highlight=False, markup=False, soft_wrap=True)


class _PictureDir:
    """Where ``recognize`` writes per-photo pictures: ``<stem>-<what>.png``, never overwriting
    another photo's picture from the same run (``IMG_1.jpg`` in two folders)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.used = folder, set()

    def path(self, photo: Path, what: str) -> Path:
        stem, n = photo.stem, 1
        while (name := f"{stem}-{what}{'' if n == 1 else f'-{n}'}.png") in self.used:
            n += 1
        self.used.add(name)
        return self.folder / name

    def heatmap(self, rec, photo: Path, landmark_id: str) -> str | None:
        """Heatmap PNG of the photo against the landmark; None (with a warning) if it fails."""
        from landmark_finder.core.images import ImageLoadError, load_image
        from landmark_finder.explain.heatmaps import heatmap

        try:
            img = load_image(photo, max_side=1600)
            return str(heatmap(rec, img, landmark_id).save_png(self.path(photo, "heatmap"), img))
        except (ImageLoadError, OSError, ValueError) as e:
            err.print(f"heatmap: {photo}: {e}", highlight=False, markup=False, soft_wrap=True)
            return None

    def evidence(self, rec, photo: Path, r) -> str | None:
        """The photo beside its best-matching reference, inliers drawn; None if it fails."""
        from landmark_finder.core.images import ImageLoadError, load_image
        from landmark_finder.explain.evidence import save_evidence_png

        try:
            query = load_image(photo, max_side=rec.load_side)  # as recognized: keypoints fit
            ref = load_image(r.evidence.reference_image, max_side=rec.load_side)
            return str(save_evidence_png(self.path(photo, "evidence"), query, ref, r))
        except (ImageLoadError, OSError, ValueError) as e:
            err.print(f"evidence: {photo}: {e}", highlight=False, markup=False, soft_wrap=True)
            return None


def _print_recognition(path: Path, r) -> None:
    """A few readable lines per photo (a wide table wraps badly in narrow terminals)."""

    def line(text: str, style: str = "") -> None:
        out.print(text, style=style, highlight=False, markup=False, soft_wrap=True)

    lm = r.landmark
    others = ", ".join(f"{c.landmark.name} {c.score:.2f}" for c in r.candidates[1 if lm else 0 :])
    if r.status == "error":
        line(f"{path.name}: error: {r.error}", "red")
        return
    if lm is None:
        line(f"{path.name}: not a landmark I know (confidence {r.confidence:.2f})", "yellow")
        if others:
            line(f"    best guesses: {others}")
        return
    line(f"{path.name}: {lm.name} (confidence {r.confidence:.2f})", "bold green")
    where = " · ".join(
        x
        for x in (
            lm.address,
            f"{lm.latitude:.5f}, {lm.longitude:.5f}" if lm.latitude is not None else "",
        )
        if x
    )
    if where:
        line(f"    {where}")
    if others:
        line(f"    also possible: {others}")


@app.command()
def evaluate(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    queries: list[Path] = typer.Argument(
        ...,
        help="Query folders: sub-folders named like an indexed landmark hold its photos; every other photo has no known landmark.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the metrics."),
    max_refs_per_landmark: int | None = typer.Option(
        None,
        min=1,
        help="Few-shot: keep at most K random reference photos per landmark (refits whitening and calibration on them).",
    ),
    seed: int = typer.Option(0, help="Random seed for --max-refs-per-landmark."),
    verify: bool | None = typer.Option(
        None, "--verify/--no-verify", help=VERIFY_HELP, show_default=False
    ),
    verify_top: int | None = typer.Option(None, "--verify-top", min=1, help=VERIFY_TOP_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Benchmark: top-1 accuracy, GAP, AUROC, coverage at 99 % precision, latency."""
    from landmark_finder.recognition.evaluate import evaluate as run

    rec = _open(index_dir, verify=verify, verify_top=verify_top)
    with library_errors(), progress_bar(quiet) as cb:
        result, details = run(
            rec,
            queries,
            max_refs_per_landmark,
            progress=lambda d, t: cb(d, t, "recognizing queries"),
            seed=seed,
        )
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        return
    t = Table("metric", "value")
    for k, v in result.to_dict().items():
        t.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    t.add_row("answered (confidence ≥ threshold)", str(details.answered))
    t.add_row("precision of answers", f"{details.answered_precision:.4f}")
    t.add_row("no-landmark queries given a landmark", str(details.unknown_answered))
    t.add_row("expected calibration error", f"{details.ece:.4f}")
    t.add_row("gallery photos used", str(details.n_gallery))
    t.add_row("unreadable queries (skipped)", str(details.n_errors))
    out.print(t)


@app.command()
def backbones() -> None:
    """List the descriptor networks available offline."""
    from landmark_finder.backbones.base import available

    for name in available():
        out.print(name)
    out.print(
        "hf:<dir-or-repo-id>  (a transformers vision model from a local folder or the hub cache)"
    )


# -- command groups from their own modules (one line each) -----------------------------------
from landmark_finder.cli.dataset import app as dataset_app  # noqa: E402

app.add_typer(dataset_app, name="dataset")
from landmark_finder.cli.catalog import app as catalog_app  # noqa: E402

app.add_typer(catalog_app, name="catalog")
from landmark_finder.cli.explain import app as explain_app  # noqa: E402
from landmark_finder.cli.explain import locate_cmd

app.add_typer(explain_app, name="explain")
app.command("locate")(locate_cmd)
from landmark_finder.cli.serve import serve  # noqa: E402

app.command("serve")(serve)
from landmark_finder.cli.gui import gui  # noqa: E402

app.command("gui")(gui)
# train commands
from landmark_finder.cli.train import compare, train  # noqa: E402

app.command("train")(train)
app.command("compare")(compare)


def main() -> None:  # pragma: no cover
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

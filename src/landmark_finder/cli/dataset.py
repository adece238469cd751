"""``landmark-finder dataset ...``: preparing a photo collection (a thin shell over
:mod:`landmark_finder.dataset`).

Tables and summaries go to stdout, progress bars and warnings to stderr; ``--json`` prints one
JSON object on stdout instead of the table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from landmark_finder.cli import collect as collect_cmd
from landmark_finder.cli.kit import (
    LANG,
    QUIET,
    fail,
    library_errors,
    out,
    print_warnings,
    progress_bar,
    use_language,
)
from landmark_finder.i18n import _, n_photos, ngettext

app = typer.Typer(
    help="Prepare a landmark photo collection (one folder per landmark, or train/ and test/ "
    "folders "
    "of landmark folders): stats, clean, split, augment, collect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
MIN_SIDE = typer.Option(
    64, "--min-side", min=1, help="Photos under this many pixels on their short side count as tiny."
)


def _need_dir(path: Path) -> None:
    if not path.is_dir():
        fail(_("{path}: not a folder").format(path=path))


# --- stats ------------------------------------------------------------------------------------


@app.command()
def stats(
    directory: Path = typer.Argument(
        ...,
        metavar="DIR",
        help="The collection: DIR/<landmark>/photos or DIR/<train|test>/<landmark>/photos.",
    ),
    chart: Path | None = typer.Option(
        None,
        help="Where to write the bar chart PNG (default: ./<DIR-name>-photos-per-landmark.png).",
    ),
    no_chart: bool = typer.Option(False, "--no-chart", help="Do not draw the chart."),
    duplicates: bool = typer.Option(
        True,
        "--duplicates/--no-duplicates",
        help="Also look for exact and near-duplicates (slower).",
    ),
    min_side: int = MIN_SIDE,
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as one JSON object."),
    quiet: bool = QUIET,
    lang: str | None = LANG,
) -> None:
    """Photos per landmark, sizes, formats, problems, duplicates, imbalance, and a bar chart."""
    from landmark_finder.dataset.scan import ScanOptions
    from landmark_finder.dataset.stats import collection_stats, plot_counts

    use_language(lang)
    _need_dir(directory)
    with library_errors():
        with progress_bar(quiet) as cb:
            st = collection_stats(directory, ScanOptions(min_side, duplicates, cb))
        png = None
        if not no_chart and st.landmarks:
            png = plot_counts(
                st, chart or Path(f"{directory.resolve().name}-photos-per-landmark.png")
            )
    if as_json:
        d = st.to_dict()
        d["chart"] = str(png) if png else None
        sys.stdout.write(json.dumps(d, ensure_ascii=False) + "\n")
        return
    t = Table(
        _("landmark"),
        _("photos"),
        _("augmented"),
        _("by folder"),
        _("unreadable/tiny"),
        title=_("Photos per landmark"),
    )
    for c in st.landmarks:
        by = ", ".join(f"{k}: {v}" for k, v in sorted(c.by_folder.items()) if k) or "-"
        t.add_row(c.landmark, str(c.photos), str(c.augmented or ""), by, str(c.problems or ""))
    out.print(t)
    s = Table(show_header=False, title=_("Collection"))
    imb = st.imbalance
    counts = sorted(c.photos for c in st.landmarks)
    rows = [
        (_("photos / landmarks"), f"{st.n_photos} / {len(st.landmarks)}"),
        (
            _("photos per landmark (min / median / max)"),
            f"{counts[0]} / {counts[len(counts) // 2]} / {counts[-1]}" if counts else "-",
        ),
        (
            _("imbalance (largest / smallest)"),
            _("∞ (a landmark has no readable photo)") if imb == float("inf") else f"{imb:.1f}×",
        ),
        (_("formats"), ", ".join(f"{k} {v}" for k, v in st.formats.items()) or "-"),
        (_("width px (min / median / max)"), "{min} / {median} / {max}".format(**st.width)),
        (_("height px (min / median / max)"), "{min} / {median} / {max}".format(**st.height)),
        (_("broken or not images"), str(len(st.broken) + len(st.not_images))),
        (_("tiny"), str(len(st.tiny))),
        (_("hidden / OS files"), str(len(st.junk))),
        (_("photos outside landmark folders"), str(len(st.loose))),
    ]
    if st.checked_duplicates:
        rows += [
            (
                _("duplicate groups (exact / near)"),
                f"{st.exact_duplicate_groups} / {st.near_duplicate_groups}",
            ),
            (_("redundant copies"), str(st.duplicate_photos)),
            (_("groups spanning two landmarks"), str(st.cross_landmark_groups)),
        ]
    for k, v in rows:
        s.add_row(k, v)
    out.print(s)
    print_warnings(st.broken, _("broken"))
    print_warnings(st.tiny, _("tiny"))
    if png:
        out.print(_("Chart: {path}").format(path=png), highlight=False)
    if st.broken or st.not_images or st.junk or st.tiny or st.duplicate_photos:
        tip = _("Run `landmark-finder dataset clean DIR` to see what to move aside.")
        out.print(tip, highlight=False)


# --- clean ------------------------------------------------------------------------------------


@app.command()
def clean(
    directory: Path = typer.Argument(..., metavar="DIR", help="The collection to check."),
    apply: bool = typer.Option(
        False, "--apply", help="Move the offenders to the quarantine (default: only report)."
    ),
    quarantine_dir: Path | None = typer.Option(
        None,
        "--quarantine",
        help="Quarantine folder, outside DIR (default: DIR/../<DIR-name>.quarantine).",
    ),
    min_side: int = MIN_SIDE,
    duplicates: bool = typer.Option(
        True, "--duplicates/--no-duplicates", help="Also find exact and near-duplicates."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the offenders as one JSON object."),
    quiet: bool = QUIET,
    lang: str | None = LANG,
) -> None:
    """Find junk, broken and tiny images, and duplicates; move them aside with --apply.

    Looks for hidden/OS files, non-images, broken or truncated and tiny images, exact duplicates and
    near-duplicates (resized, recompressed or slightly cropped copies), also across two landmarks
    and across train/test folders. Only reports unless --apply, which moves offenders to a
    quarantine folder with a manifest.csv saying why. Never deletes; a re-run finds nothing new.
    """
    from landmark_finder.dataset.clean import default_quarantine, find_offenders, quarantine
    from landmark_finder.dataset.scan import ScanOptions

    use_language(lang)
    _need_dir(directory)
    with library_errors(), progress_bar(quiet) as cb:
        report = find_offenders(directory, ScanOptions(min_side, duplicates, cb))
        dest = quarantine_dir or default_quarantine(directory)
        moved = quarantine(report, dest, cb) if apply else []
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "checked_files": report.n_files,
                    "apply": apply,
                    "quarantine": str(dest) if apply else None,
                    "moved": len(moved),
                    "offenders": [
                        {
                            "path": o.rel,
                            "reason": o.reason,
                            "detail": o.detail,
                            "group": o.group,
                            "duplicate_of": o.duplicate_of or None,
                        }
                        for o in report.offenders
                    ],
                },
                ensure_ascii=False,
            )
            + "\n"
        )
        return
    if report.offenders:
        n = len(report.offenders)
        t = Table(title=ngettext("{n} offender", "{n} offenders", n).format(n=n))
        t.add_column(_("file"), overflow="fold", ratio=3)
        t.add_column(_("reason"), no_wrap=True)
        t.add_column(_("detail"), overflow="fold", ratio=3)
        t.add_column(_("keep instead"), overflow="fold", ratio=3)
        for o in report.offenders:
            t.add_row(o.rel, o.reason, o.detail, o.duplicate_of)
        out.print(t)
    # the reasons are the codes of the quarantine's manifest.csv (and --json): kept as they are
    counts = ", ".join(f"{len(v)} {k}" for k, v in report.by_reason().items() if v)
    text = ngettext("Checked {n} file: {counts}.", "Checked {n} files: {counts}.", report.n_files)
    out.print(
        text.format(n=report.n_files, counts=counts or _("nothing to clean")), highlight=False
    )
    if apply:
        text = ngettext(
            "Moved {n} file to {dest} (see {manifest}).",
            "Moved {n} files to {dest} (see {manifest}).",
            len(moved),
        )
        out.print(
            text.format(n=len(moved), dest=dest, manifest=dest / "manifest.csv"), highlight=False
        )
    elif report.offenders:
        text = _("Nothing moved. Re-run with --apply to move them to {dest}.")
        out.print(text.format(dest=dest), highlight=False)


# --- split ------------------------------------------------------------------------------------


@app.command()
def split(
    directory: Path = typer.Argument(
        ..., metavar="DIR", help="The collection to split (split folders in it are pooled)."
    ),
    out_dir: Path = typer.Argument(
        ...,
        metavar="OUT",
        help="New folder for OUT/train|val|test/<landmark>/ (must not exist or be empty).",
    ),
    ratios: tuple[float, float, float] = typer.Option(
        (0.7, 0.15, 0.15),
        "--ratios",
        help="Shares of train, val and test (three numbers; 0 leaves a split out).",
    ),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same split."),
    min_side: int = MIN_SIDE,
    quiet: bool = QUIET,
    lang: str | None = LANG,
) -> None:
    """Leak-free, stratified, seeded train/val/test split into OUT.

    A photo, its near-duplicates and its augmented variants always land in the same split. Writes
    OUT/<split>/<landmark>/ as hard links (copies across file systems) and
    OUT/split_manifest.csv.
    """
    from landmark_finder.dataset.split import SPLIT_NAMES, split_collection

    use_language(lang)
    _need_dir(directory)
    with library_errors(), progress_bar(quiet) as cb:
        rep = split_collection(directory, out_dir, ratios, seed, min_side, cb)
    title = _("Split of {folder} (seed {seed})").format(folder=directory, seed=seed)
    t = Table(_("landmark"), *SPLIT_NAMES, title=title)  # split names are folder names
    totals = dict.fromkeys(SPLIT_NAMES, 0)
    for lm in sorted(rep.counts):
        t.add_row(lm, *(str(rep.counts[lm][s]) for s in SPLIT_NAMES))
        for s in SPLIT_NAMES:
            totals[s] += rep.counts[lm][s]
    t.add_row(f"[b]{_('total')}[/b]", *(f"[b]{totals[s]}[/b]" for s in SPLIT_NAMES))
    out.print(t)
    print_warnings(rep.skipped, _("skipped (unreadable)"))
    groups = ngettext("{n} group", "{n} groups", rep.n_groups).format(n=rep.n_groups)
    text = _(
        "{groups}; {photos} kept together with a near-duplicate or augmented variant. "
        "{linked} hard links, {copied} copies → {out} (manifest: {manifest})"
    )
    text = text.format(
        groups=groups,
        photos=n_photos(rep.n_grouped_photos),
        linked=rep.linked,
        copied=rep.copied,
        out=out_dir,
        manifest=out_dir / "split_manifest.csv",
    )
    out.print(text, highlight=False)


# --- augment ----------------------------------------------------------------------------------


@app.command()
def augment(
    directory: Path = typer.Argument(
        ..., metavar="DIR", help="The collection; variants are written next to their source photos."
    ),
    per_landmark: int = typer.Option(
        ...,
        "--per-landmark",
        "-n",
        min=1,
        help="Fill every landmark with fewer photos up to this many.",
    ),
    seed: int = typer.Option(0, help="Random seed for choosing sources and operations."),
    ops: str = typer.Option(
        "crop,flip,colour,perspective,blur", help="Comma-separated operations to draw from."
    ),
    min_side: int = MIN_SIDE,
    quiet: bool = QUIET,
    lang: str | None = LANG,
) -> None:
    """Fill landmarks with fewer than N photos with augmented variants.

    Operations: crop, flip, colour, perspective, blur. Variants are named <photo>__aug<k>.jpg and
    listed in DIR/augmented.csv, so split (and evaluate) keep them with their source photo. In
    train/test layouts only train folders are filled.
    """
    from landmark_finder.dataset.augment import augment_collection

    use_language(lang)
    _need_dir(directory)
    with library_errors(), progress_bar(quiet) as cb:
        operations = tuple(o.strip() for o in ops.split(",") if o.strip())
        rep = augment_collection(directory, per_landmark, seed, operations, min_side, progress=cb)
    print_warnings(rep.warnings, _("warning"))
    title = _("Augmented up to {photos}").format(photos=n_photos(per_landmark))
    t = Table(_("landmark"), _("before"), _("after"), title=title)
    for lm, (before, after) in rep.per_landmark.items():
        if after != before:
            t.add_row(lm, str(before), str(after))
    if t.row_count:
        out.print(t)
    n = len(rep.written)
    text = ngettext(
        "Wrote {n} variant (manifest: {manifest}).", "Wrote {n} variants (manifest: {manifest}).", n
    )
    out.print(text.format(n=n, manifest=directory / "augmented.csv"), highlight=False)


app.command()(collect_cmd.collect)

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

from landmark_finder.cli.kit import (
    QUIET,
    fail,
    library_errors,
    out,
    print_warnings,
    progress_bar,
)

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
        fail(f"{path}: not a folder")


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
) -> None:
    """Photos per landmark, sizes, formats, problems, duplicates, imbalance, and a bar chart."""
    from landmark_finder.dataset.scan import ScanOptions
    from landmark_finder.dataset.stats import collection_stats, plot_counts

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
        "landmark",
        "photos",
        "augmented",
        "by folder",
        "unreadable/tiny",
        title="Photos per landmark",
    )
    for c in st.landmarks:
        by = ", ".join(f"{k}: {v}" for k, v in sorted(c.by_folder.items()) if k) or "-"
        t.add_row(c.landmark, str(c.photos), str(c.augmented or ""), by, str(c.problems or ""))
    out.print(t)
    s = Table(show_header=False, title="Collection")
    imb = st.imbalance
    counts = sorted(c.photos for c in st.landmarks)
    rows = [
        ("photos / landmarks", f"{st.n_photos} / {len(st.landmarks)}"),
        (
            "photos per landmark (min / median / max)",
            f"{counts[0]} / {counts[len(counts) // 2]} / {counts[-1]}" if counts else "-",
        ),
        (
            "imbalance (largest / smallest)",
            "∞ (a landmark has no readable photo)" if imb == float("inf") else f"{imb:.1f}×",
        ),
        ("formats", ", ".join(f"{k} {v}" for k, v in st.formats.items()) or "-"),
        ("width px (min / median / max)", "{min} / {median} / {max}".format(**st.width)),
        ("height px (min / median / max)", "{min} / {median} / {max}".format(**st.height)),
        ("broken or not images", str(len(st.broken) + len(st.not_images))),
        ("tiny", str(len(st.tiny))),
        ("hidden / OS files", str(len(st.junk))),
        ("photos outside landmark folders", str(len(st.loose))),
    ]
    if st.checked_duplicates:
        rows += [
            (
                "duplicate groups (exact / near)",
                f"{st.exact_duplicate_groups} / {st.near_duplicate_groups}",
            ),
            ("redundant copies", str(st.duplicate_photos)),
            ("groups spanning two landmarks", str(st.cross_landmark_groups)),
        ]
    for k, v in rows:
        s.add_row(k, v)
    out.print(s)
    print_warnings(st.broken, "broken")
    print_warnings(st.tiny, "tiny")
    if png:
        out.print(f"Chart: {png}", highlight=False)
    if st.broken or st.not_images or st.junk or st.tiny or st.duplicate_photos:
        out.print(
            "Run `landmark-finder dataset clean DIR` to see what to move aside.", highlight=False
        )


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
) -> None:
    """Find junk, broken and tiny images, and duplicates; move them aside with --apply.

    Looks for hidden/OS files, non-images, broken or truncated and tiny images, exact duplicates and
    near-duplicates (resized, recompressed or slightly cropped copies), also across two landmarks
    and across train/test folders. Only reports unless --apply, which moves offenders to a
    quarantine folder with a manifest.csv saying why. Never deletes; a re-run finds nothing new.
    """
    from landmark_finder.dataset.clean import default_quarantine, find_offenders, quarantine
    from landmark_finder.dataset.scan import ScanOptions

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
        t = Table(title=f"{len(report.offenders)} offenders")
        t.add_column("file", overflow="fold", ratio=3)
        t.add_column("reason", no_wrap=True)
        t.add_column("detail", overflow="fold", ratio=3)
        t.add_column("keep instead", overflow="fold", ratio=3)
        for o in report.offenders:
            t.add_row(o.rel, o.reason, o.detail, o.duplicate_of)
        out.print(t)
    counts = (
        ", ".join(f"{len(v)} {k}" for k, v in report.by_reason().items() if v) or "nothing to clean"
    )
    out.print(f"Checked {report.n_files} files: {counts}.", highlight=False)
    if apply:
        out.print(
            f"Moved {len(moved)} files to {dest} (see {dest / 'manifest.csv'}).", highlight=False
        )
    elif report.offenders:
        out.print(f"Nothing moved. Re-run with --apply to move them to {dest}.", highlight=False)


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
) -> None:
    """Leak-free, stratified, seeded train/val/test split into OUT.

    A photo, its near-duplicates and its augmented variants always land in the same split. Writes
    OUT/<split>/<landmark>/ as hard links (copies across file systems) and
    OUT/split_manifest.csv.
    """
    from landmark_finder.dataset.split import SPLIT_NAMES, split_collection

    _need_dir(directory)
    with library_errors(), progress_bar(quiet) as cb:
        rep = split_collection(directory, out_dir, ratios, seed, min_side, cb)
    t = Table("landmark", *SPLIT_NAMES, title=f"Split of {directory} (seed {seed})")
    totals = dict.fromkeys(SPLIT_NAMES, 0)
    for lm in sorted(rep.counts):
        t.add_row(lm, *(str(rep.counts[lm][s]) for s in SPLIT_NAMES))
        for s in SPLIT_NAMES:
            totals[s] += rep.counts[lm][s]
    t.add_row("[b]total[/b]", *(f"[b]{totals[s]}[/b]" for s in SPLIT_NAMES))
    out.print(t)
    print_warnings(rep.skipped, "skipped (unreadable)")
    out.print(
        f"{rep.n_groups} groups; {rep.n_grouped_photos} photos kept together with a "
        "near-duplicate or "
        f"augmented variant. {rep.linked} hard links, {rep.copied} copies → {out_dir} "
        f"(manifest: {out_dir / 'split_manifest.csv'})",
        highlight=False,
    )


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
) -> None:
    """Fill landmarks with fewer than N photos with augmented variants.

    Operations: crop, flip, colour, perspective, blur. Variants are named <photo>__aug<k>.jpg and
    listed in DIR/augmented.csv, so split (and evaluate) keep them with their source photo. In
    train/test layouts only train folders are filled.
    """
    from landmark_finder.dataset.augment import augment_collection

    _need_dir(directory)
    with library_errors(), progress_bar(quiet) as cb:
        operations = tuple(o.strip() for o in ops.split(",") if o.strip())
        rep = augment_collection(directory, per_landmark, seed, operations, min_side, progress=cb)
    print_warnings(rep.warnings, "warning")
    t = Table("landmark", "before", "after", title=f"Augmented up to {per_landmark} photos")
    for lm, (before, after) in rep.per_landmark.items():
        if after != before:
            t.add_row(lm, str(before), str(after))
    if t.row_count:
        out.print(t)
    out.print(
        f"Wrote {len(rep.written)} variants (manifest: {directory / 'augmented.csv'}).",
        highlight=False,
    )


# --- collect ----------------------------------------------------------------------------------


@app.command()
def collect(
    list_csv: Path = typer.Argument(
        ...,
        metavar="LIST.csv",
        help="CSV of landmark_id,url rows; optional columns commons_category, licence, author.",
    ),
    out_dir: Path = typer.Argument(
        ...,
        metavar="OUT",
        help="Gallery folder to fill (OUT/<landmark_id>/), created if needed; re-runs resume.",
    ),
    per_category: int = typer.Option(
        50, min=1, help="At most this many photos per Wikimedia Commons category."
    ),
    max_mb: float = typer.Option(
        25.0, min=0.01, help="Refuse downloads larger than this many megabytes."
    ),
    delay: float = typer.Option(
        1.0, min=0.0, help="Seconds between two requests to the same host."
    ),
    retries: int = typer.Option(
        3,
        min=0,
        help="Retries after time-outs, connection errors, 429 and 5xx (with doubling waits).",
    ),
    timeout: float = typer.Option(30.0, min=1.0, help="Seconds to wait for a server."),
    thumb_width: int = typer.Option(
        1600, min=0, help="Width of the Commons rendition to fetch (0: the original file)."
    ),
    user_agent: str | None = typer.Option(
        None,
        help="User-Agent with your contact, e.g. 'my-gallery/1.0 (me@example.org)' (Wikimedia asks "
        "for one).",
    ),
    commons_api: str = typer.Option(
        "https://commons.wikimedia.org/w/api.php", hidden=True, help="Commons API endpoint."
    ),
    quiet: bool = QUIET,
) -> None:
    """Download a gallery from a CSV of photo URLs and Wikimedia Commons categories.

    Polite rate limit per host, retries with backoff, size limit, Content-Type and image checks,
    de-duplication by content, and a <photo>.json sidecar with source URL, licence and author.
    """
    from landmark_finder.dataset.collect import collect as run
    from landmark_finder.dataset.http import HttpSettings

    settings = HttpSettings(
        min_interval=delay, retries=retries, timeout=timeout, max_bytes=int(max_mb * 1e6)
    )
    if user_agent:
        settings.user_agent = user_agent
    with library_errors(), progress_bar(quiet) as cb:
        rep = run(
            list_csv,
            out_dir,
            settings,
            per_category,
            commons_api,
            thumb_width or None,
            progress=cb,
        )
    print_warnings(rep.failed, "failed")
    if rep.per_landmark:
        t = Table("landmark", "new photos")
        for lm, n in sorted(rep.per_landmark.items()):
            t.add_row(lm, str(n))
        out.print(t)
    out.print(
        f"Saved {len(rep.saved)} photos to {out_dir}; {rep.duplicates} duplicate downloads "
        "dropped, "
        f"{rep.already_collected} URLs already collected, {len(rep.failed)} failed.",
        highlight=False,
    )

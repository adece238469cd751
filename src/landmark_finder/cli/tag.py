"""``landmark-finder tag INDEX PHOTOS...`` and ``landmark-finder tag clear PHOTOS...``: a thin
shell over :mod:`landmark_finder.library`.

``tag`` is a command group whose default command is the tagging run, so both
``tag INDEX PHOTOS...`` and ``tag clear PHOTOS...`` read naturally.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup

from landmark_finder.cli.kit import (
    LANG,
    confidence_option,
    library_errors,
    out,
    print_warnings,
    progress_bar,
    use_language,
)
from landmark_finder.i18n import _, ngettext


class _DefaultRun(TyperGroup):
    """``tag ARGS`` means ``tag run ARGS`` unless ARGS starts with a sub-command's name."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_DefaultRun,
    help="Tag a photo library: recognize every photo, write XMP metadata (sidecars by "
    "default), report wrong GPS tags. `tag INDEX PHOTOS...` runs; `tag clear PHOTOS...` undoes.",
    no_args_is_help=True,
)


@app.command("run")
def run(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    photos: list[Path] = typer.Argument(..., help="Photos, or folders searched recursively."),
    workers: int = typer.Option(
        0, "--workers", "-w", min=0, help="Worker processes [default: one per core]."
    ),
    verify: bool | None = typer.Option(
        None,
        "--verify/--no-verify",
        help="Geometric verification (default: when the index can).",
        show_default=False,
    ),
    min_confidence: float | None = confidence_option(
        "--min-confidence", "Tag only at or above this confidence [default: the index's threshold]."
    ),
    db: Path | None = typer.Option(
        None,
        "--db",
        help="Tag database [default: .landmark-finder-tags.sqlite in the first folder].",
    ),
    retag: bool = typer.Option(
        False, "--retag", help="Redo every photo (e.g. after the index changed)."
    ),
    sidecar_style: str = typer.Option(
        "darktable",
        "--sidecar-style",
        help="darktable: photo.jpg.xmp (also digiKam); lightroom: photo.xmp.",
    ),
    write_into_file: bool = typer.Option(
        False,
        "--write-into-file",
        help="Write into each photo's own XMP instead of a sidecar (pixels untouched).",
    ),
    set_gps: str | None = typer.Option(
        None,
        "--set-gps",
        help="Write the landmark's position as the GPS tag: missing (only where none) or "
        "mismatch (also replace one farther than --max-km).",
    ),
    max_km: float = typer.Option(
        5.0,
        "--max-km",
        min=0.001,
        help="A GPS tag farther than this from the landmark is a mismatch.",
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Write a report: FILE.csv, FILE.jsonl or FILE.geojson."
    ),
    html: Path | None = typer.Option(
        None, "--html", help="Write an HTML report (map, mis-tagged photos) into this folder."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    lang: str | None = LANG,
) -> None:
    """Tag every new or changed photo; interrupted runs resume where they stopped."""
    from landmark_finder.library.html import write_html
    from landmark_finder.library.report import FORMATS, is_mismatch, write_report
    from landmark_finder.library.tagger import TagOptions, tag_library

    use_language(lang)  # messages and the HTML report; XMP tags keep the catalog's names
    with library_errors():
        if report is not None and report.suffix.lower() not in FORMATS:
            raise ValueError(f"--report must end in {', '.join(FORMATS)}: {report}")
        opts = TagOptions(
            verify,
            None,
            min_confidence,
            sidecar_style,
            write_into_file,
            set_gps,
            max_km,
            retag,
            workers,
        )
        if sidecar_style not in ("darktable", "lightroom"):
            raise ValueError("--sidecar-style must be darktable or lightroom")
        with progress_bar(quiet, rate=_("photos")) as cb:
            s = tag_library(index_dir, photos, db, opts, progress=cb)
            if report is not None:
                write_report(s.records, report, max_km)
            if html is not None:
                page = write_html(s.records, html, max_km, progress=cb)
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(s.skipped.items()))
    mism = sum(is_mismatch(r, max_km) for r in s.records)
    rate = ""
    if s.handled and s.seconds:
        rate = " " + _("({rate} photos/s)").format(rate=f"{s.handled / s.seconds:.1f}")
    text = ngettext(
        "{n} photo: {handled} handled in {seconds} s{rate}, {unchanged} unchanged since the "
        "last run; {tagged} tagged, {unknown} unknown, {errors} unreadable",
        "{n} photos: {handled} handled in {seconds} s{rate}, {unchanged} unchanged since the "
        "last run; {tagged} tagged, {unknown} unknown, {errors} unreadable",
        s.photos,
    ).format(
        n=s.photos,
        handled=s.handled,
        seconds=f"{s.seconds:.1f}",
        rate=rate,
        unchanged=s.unchanged,
        tagged=s.tagged,
        unknown=s.unknown,
        errors=s.errors,
    )
    if skipped:
        text += "; " + _("skipped {what}").format(what=skipped)
    text += "; " + _("{n} with a GPS tag more than {km} km from the landmark.").format(
        n=mism, km=f"{max_km:g}"
    )
    out.print(text, highlight=False, soft_wrap=True)

    if s.index_changed and not retag:
        print_warnings(
            [
                _(
                    "the index changed since the last run; photos done before keep their "
                    "answers (use --retag to redo them)"
                )
            ],
            _("note"),
        )
    print_warnings(s.write_failures, _("not written (retried next run)"))
    print_warnings(s.error_lines, _("unreadable"))
    if report is not None:
        out.print(_("Report: {path}").format(path=report), highlight=False, soft_wrap=True)
    if html is not None:
        out.print(_("HTML report: {path}").format(path=page), highlight=False, soft_wrap=True)


@app.command("clear")
def clear(
    photos: list[Path] = typer.Argument(..., help="Photos, or folders searched recursively."),
    db: Path | None = typer.Option(
        None, "--db", help="Tag database [default: in the first folder]."
    ),
    lang: str | None = LANG,
) -> None:
    """Remove what `tag` wrote (only its own fields; a replaced GPS tag is restored)."""
    from landmark_finder.library.tagger import clear_library

    use_language(lang)
    with library_errors():
        n, cleared = clear_library(photos, db)
    text = ngettext("Cleared {cleared} of {n} photo.", "Cleared {cleared} of {n} photos.", n)
    out.print(text.format(cleared=cleared, n=n), highlight=False)

"""``landmark-finder dataset collect``: download a gallery from a CSV of photo URLs and Wikimedia
Commons categories (a thin shell over :mod:`landmark_finder.dataset.collect`; registered by
:mod:`landmark_finder.cli.dataset`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from landmark_finder.cli.kit import (
    LANG,
    QUIET,
    library_errors,
    out,
    print_warnings,
    progress_bar,
    use_language,
)
from landmark_finder.i18n import _, n_photos


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
    lang: str | None = LANG,
) -> None:
    """Download a gallery from a CSV of photo URLs and Wikimedia Commons categories.

    Polite rate limit per host, retries with backoff, size limit, Content-Type and image checks,
    de-duplication by content, and a <photo>.json sidecar with source URL, licence and author.
    """
    from landmark_finder.dataset.collect import collect as run
    from landmark_finder.dataset.http import HttpSettings

    use_language(lang)
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
    print_warnings(rep.failed, _("failed"))
    if rep.per_landmark:
        t = Table(_("landmark"), _("new photos"))
        for lm, n in sorted(rep.per_landmark.items()):
            t.add_row(lm, str(n))
        out.print(t)
    text = _(
        "Saved {photos} to {out}; {duplicates} duplicate downloads dropped, {already} URLs "
        "already collected, {failed} failed."
    )
    text = text.format(
        photos=n_photos(len(rep.saved)),
        out=out_dir,
        duplicates=rep.duplicates,
        already=rep.already_collected,
        failed=len(rep.failed),
    )
    out.print(text, highlight=False)

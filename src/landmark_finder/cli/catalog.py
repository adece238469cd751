"""``landmark-finder catalog ...``: check, show and enrich a landmark catalog (a thin shell over
:mod:`landmark_finder.core.catalog` and :mod:`landmark_finder.dataset.enrich`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from landmark_finder.cli.kit import (
    LANG,
    err,
    fail,
    library_errors,
    out,
    progress_bar,
    use_language,
)
from landmark_finder.i18n import _, n_landmarks, ngettext

app = typer.Typer(
    help="Check, show and enrich a landmark catalog (CSV): coordinates, addresses, names in "
    "several languages and Wikidata ids looked up from a list of names.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
CATALOG = typer.Argument(..., metavar="CATALOG.csv", help="Catalog CSV (or headerless index,name).")


def _coords(lat: float | None, lon: float | None) -> str:
    return "" if lat is None or lon is None else f"{lat:.5f}, {lon:.5f}"


@app.command()
def validate(catalog: Path = CATALOG, lang: str | None = LANG) -> None:
    """Check a catalog: every problem with its line; exit code 1 when there is any."""
    from landmark_finder.core.catalog import CatalogError, load_catalog

    use_language(lang)
    try:
        cat = load_catalog(catalog)
    except CatalogError as e:
        for line in e.problems:
            err.print(line, markup=False, highlight=False, soft_wrap=True)
        n = len(e.problems)
        err.print(
            f"[red]{ngettext('{n} problem', '{n} problems', n).format(n=n)}[/red]",
            highlight=False,
        )
        raise typer.Exit(1) from None
    except OSError as e:
        fail(str(e))
    placed = sum(lm.latitude is not None for lm in cat)
    text = _(
        "{catalog}: OK, {landmarks}, {placed} with coordinates, {addresses} with an address, "
        "{wikidata} with a Wikidata id"
    )
    text = text.format(
        catalog=catalog,
        landmarks=n_landmarks(len(cat)),
        placed=placed,
        addresses=sum(bool(lm.address) for lm in cat),
        wikidata=sum(bool(lm.wikidata) for lm in cat),
    )
    out.print(text, highlight=False, markup=False)


@app.command()
def show(
    catalog: Path = CATALOG,
    map_png: Path | None = typer.Option(
        None, "--map", help="Also draw the landmarks on a world-outline map (PNG)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per landmark per line."),
    limit: int = typer.Option(0, min=0, help="Show the first N rows only (0: all)."),
    lang: str | None = LANG,
) -> None:
    """The catalog as a table (or JSON lines), optionally as a map."""
    from landmark_finder.core.catalog import load_catalog

    use_language(lang)
    with library_errors():
        cat = load_catalog(catalog)
        rows = list(cat)[: limit or None]
        if as_json:
            for lm in rows:
                print(json.dumps(lm.to_dict(), ensure_ascii=False))
        else:
            langs = list(dict.fromkeys(k for lm in cat for k in lm.names))
            table = Table(title=f"{catalog} ({n_landmarks(len(cat))})")
            # id, name, name_<lang> are the catalog's own column names: shown as they are
            for column in ("id", "name", *(f"name_{k}" for k in langs)):
                table.add_column(column)
            for column in (_("coordinates"), _("address"), _("country"), _("Wikidata")):
                table.add_column(column)
            for lm in rows:
                table.add_row(
                    lm.id,
                    lm.name,
                    *(lm.names.get(k, "") for k in langs),
                    _coords(lm.latitude, lm.longitude),
                    lm.address,
                    lm.country,
                    lm.wikidata,
                )
            out.print(table)
        if map_png is not None:
            from landmark_finder.dataset.catalog_map import draw_catalog_map

            path, drawn = draw_catalog_map(cat, map_png, title=catalog.name)
            text = ngettext("map of {n} landmark: {path}", "map of {n} landmarks: {path}", drawn)
            err.print(text.format(n=drawn, path=path), highlight=False, markup=False)


@app.command()
def enrich(
    catalog: Path = CATALOG,
    out_path: Path = typer.Option(..., "--out", "-o", help="Where to write the enriched catalog."),
    lang: str = typer.Option(
        "en",
        help="Languages of the names and addresses to fill, comma-separated; the first is the "
        "catalog's own language (searched, and used for `address`).",
    ),
    near: str | None = typer.Option(
        None,
        help='Keep matches in this area and rank them by distance: a place name ("Seoul") or '
        '"lat,lon,km".',
    ),
    review: Path | None = typer.Option(
        None,
        help="CSV of the rows with no match or several plausible ones, with up to 3 candidates "
        "each (default: <out>-review.csv).",
    ),
    refresh: bool = typer.Option(
        False, help="Look up every row again (fields you typed yourself are never overwritten)."
    ),
    contact: str = typer.Option(
        "",
        envvar="LANDMARK_FINDER_CONTACT",
        help="Your e-mail or URL, sent in the User-Agent as Wikimedia and OpenStreetMap ask.",
    ),
    wikidata_url: str = typer.Option(
        "https://www.wikidata.org/w/api.php", help="Wikidata API endpoint."
    ),
    nominatim_url: str = typer.Option(
        "https://nominatim.openstreetmap.org", help="Nominatim server (your own, for big lists)."
    ),
    nominatim_interval: float = typer.Option(
        1.0, min=0.0, help="Seconds between Nominatim requests (the public server: at least 1)."
    ),
    wikidata_interval: float = typer.Option(
        0.2, min=0.0, help="Seconds between Wikidata requests."
    ),
    backoff: float = typer.Option(2.0, min=0.0, help="First retry wait in seconds (doubles)."),
    cache: Path | None = typer.Option(
        None, help="Answer cache (SQLite) [default: ~/.cache/landmark-finder/lookups.sqlite]."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Ask the services again."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Fill coordinates, address, names, country, website and Wikidata id from Wikidata and
    OpenStreetMap; rows that need a person go to the review file, never guessed."""
    from landmark_finder import __version__
    from landmark_finder.core.catalog import load_catalog, save_catalog
    from landmark_finder.dataset.enrich import Enricher, parse_near, write_review
    from landmark_finder.dataset.http import HttpSettings, PoliteClient
    from landmark_finder.dataset.lookup_cache import LookupCache, NoCache, default_cache_path
    from landmark_finder.dataset.nominatim import NominatimClient, NominatimSettings
    from landmark_finder.dataset.wikidata import WikidataClient

    langs = [x.strip() for x in lang.split(",") if x.strip()]
    if not langs:
        fail(_("--lang needs at least one language code, e.g. --lang ko,en"))
    user_agent = f"landmark-finder/{__version__} (catalog enrich"
    user_agent += f"; {contact})" if contact else ")"
    if not contact:
        err.print(
            _(
                "note: no --contact given; Wikimedia and OpenStreetMap ask for one "
                "(--contact you@example.org or LANDMARK_FINDER_CONTACT)"
            ),
            highlight=False,
            markup=False,
        )
    review_path = review or out_path.with_name(out_path.stem + "-review.csv")
    with library_errors():
        cat = load_catalog(catalog)
        store = NoCache() if no_cache else LookupCache(cache or default_cache_path())
        http = PoliteClient(
            HttpSettings(min_interval=wikidata_interval, backoff=backoff, user_agent=user_agent)
        )
        nominatim = NominatimClient(
            NominatimSettings(
                url=nominatim_url,
                user_agent=user_agent,
                min_interval=nominatim_interval,
                backoff=backoff,
            ),
            store,
        )
        wikidata = WikidataClient(http, store, api_url=wikidata_url)
        try:
            area = parse_near(near, nominatim, langs[0]) if near else None
            enricher = Enricher(wikidata, nominatim, langs, area=area, refresh=refresh)
            with progress_bar(quiet) as progress:
                done = [0]

                def step(_lm) -> None:
                    done[0] += 1
                    progress(done[0], len(cat), "looking up")

                result = enricher.run(cat, step)
        finally:
            http.close()
            store.close()
        save_catalog(result.catalog, out_path)
        write_review(result.reviews, review_path)
    if area:
        err.print(
            _("area: {label} ({km} km around {lat}, {lon})").format(
                label=area.label,
                km=f"{area.radius_km:.0f}",
                lat=f"{area.center.latitude:.4f}",
                lon=f"{area.center.longitude:.4f}",
            ),
            highlight=False,
            markup=False,
        )
    text = _(
        "{out}: {matched} of {looked_up} looked-up rows filled, {skipped} already had "
        "coordinates; {reviews} to review in {review}"
    )
    text = text.format(
        out=out_path,
        matched=result.matched,
        looked_up=result.looked_up,
        skipped=result.skipped,
        reviews=len(result.reviews),
        review=review_path,
    )
    out.print(text, highlight=False, markup=False)
    text = _("requests: Wikidata {wikidata}, Nominatim {nominatim}; cached answers used: {hits}")
    text = text.format(
        wikidata=wikidata.requests_made, nominatim=nominatim.requests_made, hits=store.hits
    )
    out.print(text, highlight=False, markup=False)

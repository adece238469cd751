"""``landmark-finder`` command line: a thin shell over the library API.

This module only assembles the command groups, each defined in its own module on top of the
shared shell kit (:mod:`landmark_finder.cli.kit`); none of them imports this one.
"""

from __future__ import annotations

import logging

import typer

from landmark_finder.cli import catalog, dataset, explain, index, recognize, serve, tag, train
from landmark_finder.cli import gui as gui_cmd
from landmark_finder.cli.kit import out, use_language
from landmark_finder.i18n import _

app = typer.Typer(
    help="Name the landmark in a photo from its pixels: retrieval over your reference photos, "
    "with an honest 'unknown'.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(index.app, name="index")
app.command()(recognize.recognize)
app.command()(recognize.evaluate)


@app.command()
def backbones() -> None:
    """List the descriptor networks available offline."""
    from landmark_finder.backbones.base import available

    for name in available():
        out.print(name)
    hf = _("a transformers vision model from a local folder or the hub cache")
    out.print(f"hf:<dir-or-repo-id>  ({hf})")
    fused = _("any of the above fused with SSCD, for galleries with few photos per landmark")
    out.print(f"<backbone>+sscd  ({fused})")


app.add_typer(dataset.app, name="dataset")
app.add_typer(catalog.app, name="catalog")
app.add_typer(explain.app, name="explain")
app.command("locate")(explain.locate_cmd)
app.command("serve")(serve.serve)
app.command("gui")(gui_cmd.gui)
app.command("train")(train.train)
app.command("compare")(train.compare)
app.add_typer(tag.app, name="tag")


def main() -> None:  # pragma: no cover
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    use_language(None)  # the system locale's language; a command's --lang overrides it
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""``landmark-finder explain ...`` and ``landmark-finder locate``: thin shells over
:mod:`landmark_finder.explain` and :mod:`landmark_finder.explain.locate`.

Pictures are PNG files; ``--json`` prints one JSON object on stdout (messages go to stderr).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import typer

from landmark_finder import defaults
from landmark_finder.cli.kit import (
    LANG,
    err,
    fail,
    library_errors,
    open_recognizer,
    out,
    use_language,
)
from landmark_finder.i18n import _

app = typer.Typer(
    help="Show why: first-layer filters, feature maps, and heatmaps of what "
    "makes a photo match a landmark.",
    no_args_is_help=True,
)

MODEL_HELP = "Backbone: see `landmark-finder backbones` (or model:<dir>)."


def _default_out(stem: str, what: str) -> Path:
    return Path(f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', stem).strip('_') or 'photo'}-{what}.png")


def _done(path: Path, as_json: bool = False) -> None:
    text = _("Wrote {path}").format(path=path)
    (err if as_json else out).print(text, highlight=False, soft_wrap=True)


@app.command("filters")
def filters(
    model: str = typer.Option(defaults.BACKBONE, "--model", "-m", help=MODEL_HELP),
    out_png: Path | None = typer.Option(
        None, "--out", "-o", help="PNG to write (default: filters-<model>.png)."
    ),
    lang: str | None = LANG,
) -> None:
    """Grid picture of the first convolution layer's filters."""
    from landmark_finder.explain.heatmaps import save_filters

    use_language(lang)
    path = out_png or _default_out(f"filters-{model}", "grid")
    with library_errors():
        save_filters(path, model)
    _done(path)


@app.command("activations")
def activations(
    image: Path | None = typer.Argument(None, help="Photo (not needed with --list-layers)."),
    layer: list[str] = typer.Option(
        [],
        "--layer",
        "-l",
        help="Layer name (repeatable); default: four blocks from first to last.",
    ),
    list_layers: bool = typer.Option(
        False, "--list-layers", help="List the layer names and output shapes, then exit."
    ),
    model: str = typer.Option(defaults.BACKBONE, "--model", "-m", help=MODEL_HELP),
    out_png: Path | None = typer.Option(
        None, "--out", "-o", help="PNG to write (default: <photo>-activations.png)."
    ),
    lang: str | None = LANG,
) -> None:
    """Grids of feature-map channels of chosen layers for a photo."""
    from landmark_finder.core.images import load_image
    from landmark_finder.explain.heatmaps import default_layers, layer_table, save_activations

    use_language(lang)
    if list_layers:
        with library_errors():
            table, chosen = layer_table(model), set(default_layers(model))
        # plain lines, never truncated: names are meant to be copied into --layer
        width = max(len(li.name) for li in table)
        side = defaults.INPUT_SIZE
        head = _("layer, type, output C×h×w for a {side}×{side} photo, * = default")
        sys.stdout.write(f"# {model}: {head.format(side=side)}\n")
        for li in table:
            shape = "×".join(map(str, li.shape)) if li.shape else "-"
            mark = " *" if li.name in chosen else ""
            sys.stdout.write(f"{li.name:<{width}}  {li.kind:<26} {shape}{mark}\n")
        return
    if image is None:
        fail(_("give a photo (or --list-layers)"))
    path = out_png or _default_out(image.stem, "activations")
    with library_errors():
        save_activations(path, load_image(image, max_side=1600), layer or None, model)
    _done(path)


@app.command("heatmap")
def heatmap(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    image: Path = typer.Argument(..., help="Photo."),
    landmark: str | None = typer.Option(
        None, "--landmark", help="Landmark id to explain (default: the top answer)."
    ),
    out_png: Path | None = typer.Option(
        None, "--out", "-o", help="PNG to write (default: <photo>-heatmap.png)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help='Print {"image", "landmark", "score", "heatmap": PNG path}.'
    ),
    lang: str | None = LANG,
) -> None:
    """Heatmap of which parts of the photo make it match the landmark, over the photo."""
    from landmark_finder.core.images import load_image
    from landmark_finder.explain.heatmaps import heatmap as make

    use_language(lang)
    rec = open_recognizer(index_dir)
    path = out_png or _default_out(image.stem, "heatmap")
    with library_errors():
        img = load_image(image, max_side=1600)  # a picture to look at: no need for 48 Mpx
        h = make(rec, img, landmark)
        h.save_png(path, img)
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "image": str(image),
                    "landmark": h.landmark_id,
                    "score": round(h.score, 4),
                    "heatmap": str(path),
                },
                ensure_ascii=False,
            )
            + "\n"
        )
        return
    text = _("{name} (similarity {score})").format(name=h.landmark_name, score=f"{h.score:.2f}")
    out.print(text, highlight=False)
    _done(path)


def locate_cmd(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    image: Path = typer.Argument(..., help="Photo."),
    landmark: str | None = typer.Option(
        None, "--landmark", help="Landmark id to look for (default: the recognized one)."
    ),
    max_boxes: int = typer.Option(3, "--max-boxes", min=1, help="Most boxes to return."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help='Print {"image", "landmark", "boxes": [{"box": [x0, y0, x1, y1], "score"}], '
        '"seconds", "polygon", "landmarks": [every landmark found, with box and polygon]}.',
    ),
    out_png: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="PNG of the photo with the boxes (default without --json: <photo>-located.png).",
    ),
    lang: str | None = LANG,
) -> None:
    """Where the landmark is in the photo: boxes in pixels of the original photo, best first."""
    from landmark_finder.core.images import load_image
    from landmark_finder.explain.locate import locate

    use_language(lang)
    rec = open_recognizer(index_dir)
    with library_errors():
        img = load_image(image)  # full size: boxes are in the original photo's pixels
        r = locate(rec, img, landmark, max_boxes=max_boxes, name=str(image))
        path = out_png or (None if as_json else _default_out(image.stem, "located"))
        if path is not None:
            r.save_png(path, img)
    if as_json:
        sys.stdout.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
        if path is not None:
            _done(path, as_json=True)
        return
    seconds = f"{r.seconds:.2f}"
    if not r.boxes:
        text = _("{photo}: no known landmark found ({seconds} s)")
        out.print(text.format(photo=image, seconds=seconds), highlight=False)
    for i, f in enumerate(r.landmarks[1:], 2):
        text = _("landmark {n}: {name} (confidence {confidence}), box {box}").format(
            n=i,
            name=f.landmark.name,
            confidence=f"{f.confidence:.2f}",
            box=f"({f.box[0]}, {f.box[1]}) – ({f.box[2]}, {f.box[3]})",
        )
        out.print(text, highlight=False)
    for i, b in enumerate(r.boxes):
        text = _("{name} box {i}: {corners}, similarity {score}").format(
            name=r.landmark_name,
            i=i + 1,
            corners=f"({b.x0}, {b.y0}) – ({b.x1}, {b.y1})",
            score=f"{b.score:.2f}",
        )
        out.print(text, highlight=False)
    out.print(_("located in {seconds} s").format(seconds=seconds), highlight=False)
    if path is not None:
        _done(path)

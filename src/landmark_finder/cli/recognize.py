"""``landmark-finder recognize`` and ``landmark-finder evaluate``: photos in, landmarks (or
"unknown") out; a thin shell over :mod:`landmark_finder.recognition`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from landmark_finder import defaults
from landmark_finder.cli.kit import (
    LANG,
    confidence_option,
    err,
    library_errors,
    open_recognizer,
    out,
    progress_bar,
    use_language,
)
from landmark_finder.i18n import _

VERIFY_HELP = (
    "Geometric verification of the top candidates (default: on when the index has local features)."
)
VERIFY_TOP_HELP = "How many top landmarks to verify (default: the index's setting, 3)."
ALWAYS_VERIFY_HELP = (
    "--skip-certain (default) verifies only photos whose global answer is not already certain "
    "(the index fits when); --always-verify verifies every photo."
)


def recognize(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    images: list[Path] = typer.Argument(..., help="Photos, or folders searched recursively."),
    top_k: int = typer.Option(
        defaults.TOP_K, "--top-k", "-k", min=1, help="Candidates to list per photo."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per photo per line."),
    backbone: str | None = typer.Option(None, help="Fail unless the index uses this backbone."),
    threshold: float | None = confidence_option(
        "--threshold", "Answer 'unknown' below this confidence (default: the index's, 0.5)."
    ),
    heatmap_dir: Path | None = typer.Option(
        None,
        "--heatmap-dir",
        help="Write a heatmap PNG per photo (what makes it match its top candidate) here; JSON "
        'gains "heatmap": path.',
    ),
    evidence_dir: Path | None = typer.Option(
        None,
        "--evidence-dir",
        help="Write a PNG per photo here: the photo beside its best-matching reference photo, "
        'inlier matches drawn; JSON evidence gains "picture": path.',
    ),
    verify: bool | None = typer.Option(
        None, "--verify/--no-verify", help=VERIFY_HELP, show_default=False
    ),
    verify_top: int | None = typer.Option(None, "--verify-top", min=1, help=VERIFY_TOP_HELP),
    always_verify: bool = typer.Option(
        defaults.ALWAYS_VERIFY, "--always-verify/--skip-certain", help=ALWAYS_VERIFY_HELP
    ),
    all_landmarks: bool = typer.Option(
        False,
        "--all",
        help='Every landmark in the photo, each located: JSON gains "landmarks": [{id, name, '
        "address, latitude, longitude, confidence, box, polygon}], best first.",
    ),
    lang: str | None = LANG,
) -> None:
    """Name the landmark in each photo, or say it is unknown."""
    from landmark_finder.core.images import iter_image_files

    lang = use_language(lang)

    rec = open_recognizer(index_dir, backbone, verify, verify_top, always_verify)
    if threshold is not None:
        rec.index.calibrator.threshold = threshold
    from landmark_finder.recognition.recognizer import Recognition

    files: list[Path] = []
    skipped: dict[Path, str] = {}  # FIFOs, broken links... found in folders: answered as errors
    for p in images:
        if p.is_dir():
            notes: list[tuple[Path, str]] = []
            files += iter_image_files(p, skipped=notes)
            for path, why in notes:
                skipped[path] = f"{path}: {why}"
                files.append(path)
        else:
            files.append(p)
    heatmaps = _PictureDir(heatmap_dir) if heatmap_dir else None
    evidence = _PictureDir(evidence_dir) if evidence_dir else None
    for f in files:
        if f in skipped:
            r = Recognition(str(f), "error", error=skipped[f])
        elif all_landmarks:
            from landmark_finder.explain.locate import recognize_all

            r, found = recognize_all(rec, f, top_k=top_k, name=str(f))
        else:
            r = rec.recognize(f, top_k=top_k)
        d = r.to_dict()
        if all_landmarks:
            d["landmarks"] = found.to_dicts() if f not in skipped else []
        if heatmaps is not None and r.candidates:
            d["heatmap"] = heatmaps.heatmap(rec, f, r.candidates[0].landmark.id)
        if evidence is not None and r.evidence is not None:
            picture = evidence.evidence(rec, f, r)  # may complete a skipped verification's pair
            d["evidence"] = {**r.evidence.to_dict(), "picture": picture}
        if as_json:
            sys.stdout.write(json.dumps(d, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            _print_recognition(f, r, lang)
            if all_landmarks and f not in skipped:
                _print_landmarks(found.landmarks, lang)
            for what, path in (
                (_("heatmap"), d.get("heatmap")),
                (_("evidence"), (d["evidence"] or {}).get("picture")),
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
            text = f"{_('heatmap')}: {photo}: {e}"
            err.print(text, highlight=False, markup=False, soft_wrap=True)
            return None

    def evidence(self, rec, photo: Path, r) -> str | None:
        """The photo beside its best-matching reference, inliers drawn; None if it fails."""
        from landmark_finder.core.images import ImageLoadError, load_image
        from landmark_finder.explain.evidence import save_evidence_png

        try:
            query = load_image(photo, max_side=rec.load_side)  # as recognized: keypoints fit
            rec.complete_evidence(query, r)  # verification skipped: match this one pair now
            ref = load_image(r.evidence.reference_image, max_side=rec.load_side)
            return str(save_evidence_png(self.path(photo, "evidence"), query, ref, r))
        except (ImageLoadError, OSError, ValueError) as e:
            text = f"{_('evidence')}: {photo}: {e}"
            err.print(text, highlight=False, markup=False, soft_wrap=True)
            return None


def _print_recognition(path: Path, r, lang: str) -> None:
    """A few readable lines per photo (a wide table wraps badly in narrow terminals), names and
    addresses in the reader's language when the catalog has them."""

    def line(text: str, style: str = "") -> None:
        out.print(text, style=style, highlight=False, markup=False, soft_wrap=True)

    lm = r.landmark.localized(lang) if r.landmark else None
    others = ", ".join(
        f"{c.landmark.name_in(lang)} {c.score:.2f}" for c in r.candidates[1 if lm else 0 :]
    )
    conf = f"{r.confidence:.2f}"
    if r.status == "error":
        line(_("{photo}: error: {reason}").format(photo=path.name, reason=r.error), "red")
        return
    if lm is None:
        if r.reason and not r.candidates:  # a content check: blank, noise, tiny, transparent
            text = _("{photo}: not a landmark I know ({reason})")
            line(text.format(photo=path.name, reason=r.reason), "yellow")
            return
        text = _("{photo}: not a landmark I know (confidence {confidence})")
        line(text.format(photo=path.name, confidence=conf), "yellow")
        if others:
            line("    " + _("best guesses: {names}").format(names=others))
        return
    if r.status == "site" and r.site is not None:
        names = ", ".join(
            c.landmark.name_in(lang) for c in r.candidates if c.landmark.id in r.site.members
        )
        text = _("{photo}: {site} (confidence {confidence}), one of: {names}")
        site_conf = f"{r.site.confidence:.2f}"
        line(
            text.format(photo=path.name, site=r.site.name, confidence=site_conf, names=names),
            "bold green",
        )
    else:
        text = _("{photo}: {name} (confidence {confidence})")
        line(text.format(photo=path.name, name=lm.name, confidence=conf), "bold green")
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
        line("    " + _("also possible: {names}").format(names=others))


def _print_landmarks(found, lang: str) -> None:
    """One line per landmark found in the photo: name, confidence, box."""
    if not found:
        out.print("    " + _("no landmark located"), highlight=False, soft_wrap=True)
    for i, f in enumerate(found, 1):
        text = _("landmark {n}: {name} (confidence {confidence}), box {box}").format(
            n=i,
            name=f.landmark.name_in(lang),
            confidence=f"{f.confidence:.2f}",
            box="({}, {}) – ({}, {})".format(*f.box),
        )
        out.print("    " + text, highlight=False, markup=False, soft_wrap=True)


def evaluate(
    index_dir: Path = typer.Argument(..., help="Index directory."),
    queries: list[Path] = typer.Argument(
        ...,
        help="Query folders: sub-folders named like an indexed landmark hold its photos; every "
        "other photo has no known landmark.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the metrics."),
    max_refs_per_landmark: int | None = typer.Option(
        None,
        min=1,
        help="Few-shot: keep at most K random reference photos per landmark (refits whitening and "
        "calibration on them).",
    ),
    seed: int = typer.Option(0, help="Random seed for --max-refs-per-landmark."),
    verify: bool | None = typer.Option(
        None, "--verify/--no-verify", help=VERIFY_HELP, show_default=False
    ),
    verify_top: int | None = typer.Option(None, "--verify-top", min=1, help=VERIFY_TOP_HELP),
    always_verify: bool = typer.Option(
        defaults.ALWAYS_VERIFY, "--always-verify/--skip-certain", help=ALWAYS_VERIFY_HELP
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    lang: str | None = LANG,
) -> None:
    """Benchmark: top-1 accuracy, GAP, AUROC, coverage at 99 % precision, latency."""
    from landmark_finder.recognition.evaluate import evaluate as run

    use_language(lang)

    rec = open_recognizer(
        index_dir, verify=verify, verify_top=verify_top, always_verify=always_verify
    )
    with library_errors(), progress_bar(quiet) as cb:
        result, details = run(
            rec,
            queries,
            max_refs_per_landmark,
            progress=lambda d, t: cb(d, t, _("recognizing queries")),
            seed=seed,
        )
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        return
    t = Table(_("metric"), _("value"))
    for k, v in result.to_dict().items():
        t.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    t.add_row(_("answered (confidence ≥ threshold)"), str(details.answered))
    t.add_row(_("precision of answers"), f"{details.answered_precision:.4f}")
    t.add_row(_("no-landmark queries given a landmark"), str(details.unknown_answered))
    t.add_row(_("expected calibration error"), f"{details.ece:.4f}")
    t.add_row(_("gallery photos used"), str(details.n_gallery))
    if details.verification_rate == details.verification_rate:  # not NaN: verifying
        t.add_row(_("photos verified"), f"{details.verification_rate:.1%}")
    t.add_row(_("unreadable queries (skipped)"), str(details.n_errors))
    out.print(t)

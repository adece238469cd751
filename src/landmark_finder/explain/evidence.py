"""The evidence picture: the query beside the reference photo it matched, inliers drawn.

A person can check an answer at a glance: the same windows, arches and edges joined by lines
that all agree on one geometric mapping. Used by ``recognize --evidence-dir``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from landmark_finder.core.figures import Figure, new_figure, save_figure
from landmark_finder.i18n import _, current_language, ngettext
from landmark_finder.recognition.recognizer import Recognition
from landmark_finder.verify.geometry import outline

MAX_LINES = 150  # more lines only hide the photos


def _side_by_side(
    a: Image.Image, b: Image.Image, gap: int = 12
) -> tuple[np.ndarray, float, float, int]:
    """Both photos at the same height; returns the canvas, each photo's scale and b's x offset."""
    h = max(a.height, b.height)
    sa, sb = h / a.height, h / b.height
    ra = a.resize((max(1, round(a.width * sa)), h), Image.Resampling.BILINEAR)
    rb = b.resize((max(1, round(b.width * sb)), h), Image.Resampling.BILINEAR)
    canvas = np.full((h, ra.width + gap + rb.width, 3), 255, np.uint8)
    canvas[:, : ra.width] = np.asarray(ra.convert("RGB"))
    canvas[:, ra.width + gap :] = np.asarray(rb.convert("RGB"))
    return canvas, sa, sb, ra.width + gap


def evidence_figure(query: Image.Image, reference: Image.Image, r: Recognition) -> Figure:
    """Query (left) and reference photo (right) with the inlier matches of the top answer.

    ``query`` and ``reference`` must be the photos as decoded for recognition (the keypoint
    positions are in their pixels): ``load_image(path, max_side=recognizer.load_side)``.
    """
    ev = r.evidence
    if ev is None or not r.candidates:
        raise ValueError("this recognition has no evidence (the index has no landmarks)")
    canvas, sa, sb, xoff = _side_by_side(query, reference)
    fig = new_figure(11.0, 11.0 * canvas.shape[0] / canvas.shape[1] + 1.2)
    ax = fig.subplots()
    ax.imshow(canvas)
    ax.set_axis_off()
    m = ev.match
    if m is not None and m.inliers:
        step = max(1, m.inliers // MAX_LINES)
        q, ref = m.query_xy[::step] * sa, m.ref_xy[::step] * sb
        for (x0, y0), (x1, y1) in zip(q, ref, strict=False):
            ax.plot([x0, x1 + xoff], [y0, y1], "-", color="#00e676", lw=0.8, alpha=0.85)
        ax.plot(q[:, 0], q[:, 1], "o", ms=2.5, color="#ffea00", label=_("matched keypoint"))
        ax.plot(ref[:, 0] + xoff, ref[:, 1], "o", ms=2.5, color="#ffea00")
        ax.plot(
            [], [], "-", color="#00e676", label=_("match consistent with one homography (inlier)")
        )
        where = outline(m, query.size, reference.size)
        if where is not None:  # the reference's frame (or inliers) mapped into the photo
            poly = np.vstack([where.polygon, where.polygon[:1]]) * sa
            ax.plot(poly[:, 0], poly[:, 1], "-", color="#e61e1e", lw=2.2, label=_("landmark"))
            ax.set_xlim(0, canvas.shape[1])
            ax.set_ylim(canvas.shape[0], 0)
        fig.legend(loc="outside lower center", ncol=3, fontsize=9, frameon=False)
    top = r.candidates[0].landmark
    what = (
        ngettext("{n} inlier match", "{n} inlier matches", ev.inliers).format(n=ev.inliers)
        if ev.inliers is not None
        else _("not verified geometrically")
    )
    answer = _("recognized") if r.status == "recognized" else _("best guess, answered unknown")
    title = _(
        "{name} ({answer}, confidence {confidence}): {what}, global similarity {similarity}\n"
        "left: your photo   right: reference {reference}"
    )
    fig.suptitle(
        title.format(
            name=top.name_in(current_language()),
            answer=answer,
            confidence=f"{r.confidence:.2f}",
            what=what,
            similarity=f"{ev.global_similarity:.2f}",
            reference=Path(ev.reference_image).name,
        ),
        fontsize=11,
    )
    return fig


def save_evidence_png(
    path: str | Path, query: Image.Image, reference: Image.Image, r: Recognition
) -> Path:
    """Write the evidence picture atomically as PNG."""
    return save_figure(evidence_figure(query, reference, r), path)

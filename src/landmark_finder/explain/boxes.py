"""What :func:`landmark_finder.explain.locate.locate` returns: boxes in original-photo pixels,
and the two ways to show them (boxes drawn on the photo; a titled figure with a legend)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from landmark_finder.i18n import _


@dataclass
class Box:
    """A box in original-photo pixels (x1, y1 exclusive) and its crop's similarity score."""

    x0: int
    y0: int
    x1: int
    y1: int
    score: float

    def to_dict(self) -> dict:
        return {"box": [self.x0, self.y0, self.x1, self.y1], "score": round(float(self.score), 4)}

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)


@dataclass
class LocateResult:
    image: str
    landmark_id: str | None
    landmark_name: str | None
    boxes: list[Box] = field(default_factory=list)
    seconds: float = 0.0
    #: the best box's outline, 4 points (from the verification's homography when there was one)
    polygon: list[list[float]] | None = None
    #: every landmark found in the photo, best first (``FoundLandmark``; empty when a landmark
    #: was given and not located by geometry)
    landmarks: list = field(default_factory=list)

    def to_dict(self, lang: str | None = None) -> dict:
        return {
            "image": self.image,
            "landmark": self.landmark_id,
            "boxes": [b.to_dict() for b in self.boxes],
            "seconds": round(self.seconds, 3),
            "polygon": self.polygon,
            "landmarks": [f.to_dict(lang) for f in self.landmarks],
        }

    def draw(self, image: Image.Image) -> Image.Image:
        """The photo with the boxes drawn: best in red, others in orange, numbered."""
        im = image.convert("RGB").copy()
        d = ImageDraw.Draw(im)
        width = max(2, round(max(im.size) / 250))
        try:
            font = ImageFont.load_default(size=max(12, round(max(im.size) / 40)))
        except (TypeError, OSError):  # pragma: no cover - Pillow without FreeType
            font = ImageFont.load_default()
        for i, b in reversed(list(enumerate(self.boxes))):
            colour = (230, 30, 30) if i == 0 else (255, 150, 0)
            d.rectangle(b.xyxy, outline=colour, width=width)
            if i == 0 and self.polygon:
                pts = [(float(x), float(y)) for x, y in self.polygon]
                d.line(pts + pts[:1], fill=(255, 230, 0), width=width, joint="curve")
            label = f"{i + 1} {self.landmark_name or ''} {b.score:.2f}".replace("  ", " ")
            tb = d.textbbox((b.x0 + width, b.y0 + width), label, font=font)
            d.rectangle((tb[0] - 2, tb[1] - 2, tb[2] + 2, tb[3] + 2), fill=colour)
            d.text((b.x0 + width, b.y0 + width), label, fill=(255, 255, 255), font=font)
        return im

    def save_png(self, path: str | Path, image: Image.Image) -> Path:
        """A figure of the photo with the boxes, a title and a legend, written atomically."""
        from matplotlib.patches import Rectangle

        from landmark_finder.core.figures import new_figure, save_figure

        im = image.convert("RGB")
        fig = new_figure(*_fig_size(im, 7.0))
        ax = fig.add_subplot()
        ax.imshow(im)
        ax.set_axis_off()
        for i, b in enumerate(self.boxes):
            ax.add_patch(
                Rectangle(
                    (b.x0, b.y0),
                    b.x1 - b.x0,
                    b.y1 - b.y0,
                    fill=False,
                    lw=3 if i == 0 else 2,
                    ls="-" if i == 0 else "--",
                    ec="#e61e1e" if i == 0 else "#ff9600",
                    label=(
                        _("best box: similarity {score}")
                        if i == 0
                        else _("box {i}: similarity {score}")
                    ).format(i=i + 1, score=f"{b.score:.2f}"),
                )
            )
        if self.polygon and self.boxes:
            from matplotlib.patches import Polygon

            ax.add_patch(
                Polygon(
                    self.polygon, closed=True, fill=False, lw=2, ec="#ffe600", label=_("outline")
                )
            )
            ax.set_xlim(-0.5, im.width - 0.5)
            ax.set_ylim(im.height - 0.5, -0.5)
        for j, f in enumerate(self.landmarks[1:], 2):  # the other landmarks of the photo
            ax.add_patch(
                Rectangle(
                    (f.box[0], f.box[1]),
                    f.box[2] - f.box[0],
                    f.box[3] - f.box[1],
                    fill=False,
                    lw=2,
                    ec="#2979ff",
                    label=f"{j}: {f.landmark.name} {f.confidence:.2f}",
                )
            )
        name = self.landmark_name or _("no landmark")
        title = _("Where is {name}?") if self.boxes else _("{name}: nothing located")
        ax.set_title(title.format(name=name), fontsize=13)
        if self.boxes:
            ax.legend(
                loc="upper left",
                bbox_to_anchor=(0, -0.01),
                ncol=3,
                fontsize=9,
                frameon=False,
            )
        fig.text(
            0.99,
            0.005,
            f"located in {self.seconds:.2f} s",
            ha="right",
            va="bottom",
            fontsize=8,
            color="#555555",
        )
        return save_figure(fig, path)


def _fig_size(im: Image.Image, width: float) -> tuple[float, float]:
    return (width, max(3.0, width * im.height / im.width + 0.9))

"""Near-duplicate detection on real photos: recall on synthetic copies, false positives on the set.

    python bench/dataset_duplicates.py --shared ../shared/landmarks \\
        --out bench/dataset_duplicates.md

Recall: for a seeded sample of gallery photos, copies are made (resized, recompressed, cropped,
combined) and each (original, copy) pair is run through the same pipeline ``dataset clean``
uses (examine -> hash candidates -> pixel check). False positives: every group found among all
gallery + query photos of the Indian-monuments set is listed for a person to look at; the
README of that set says exact duplicates were removed and near-duplicate groups do not straddle
gallery/queries, so groups found there are either misses of that curation or false positives.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from pathlib import Path

from PIL import Image

from landmark_finder.core.images import iter_image_files, load_image
from landmark_finder.dataset.duplicates import find_duplicates
from landmark_finder.dataset.scan import Entry, examine, examine_all, scan_tree


def _jpeg(img: Image.Image, q: int = 90) -> bytes:
    b = io.BytesIO()
    img.save(b, "JPEG", quality=q)
    return b.getvalue()


def _crop(img: Image.Image, left: float, t: float, r: float, b: float) -> Image.Image:
    w, h = img.size
    return img.crop((int(w * left), int(h * t), int(w * (1 - r)), int(h * (1 - b))))


def _resize(img: Image.Image, s: float) -> Image.Image:
    return img.resize(
        (max(1, int(img.width * s)), max(1, int(img.height * s))), Image.Resampling.LANCZOS
    )


TRANSFORMS = {
    "resize 50 %": lambda i: _jpeg(_resize(i, 0.5)),
    "resize 25 %": lambda i: _jpeg(_resize(i, 0.25)),
    "JPEG quality 30": lambda i: _jpeg(i, 30),
    "PNG re-encode": None,  # handled below
    "crop 3 % per side": lambda i: _jpeg(_crop(i, 0.03, 0.03, 0.03, 0.03)),
    "crop 5 % per side": lambda i: _jpeg(_crop(i, 0.05, 0.05, 0.05, 0.05)),
    "crop 10 % left + 5 % bottom": lambda i: _jpeg(_crop(i, 0.10, 0, 0, 0.05)),
    "crop 8 % per side": lambda i: _jpeg(_crop(i, 0.08, 0.08, 0.08, 0.08)),
    "crop 10 % per side": lambda i: _jpeg(_crop(i, 0.10, 0.10, 0.10, 0.10)),
    "crop 12 % one side": lambda i: _jpeg(_crop(i, 0, 0, 0.12, 0)),
    "crop 5 % + resize 50 % + JPEG 50": lambda i: _jpeg(
        _resize(_crop(i, 0.05, 0.02, 0.03, 0.06), 0.5), 50
    ),
}


def recall(gallery: Path, n: int, seed: int) -> dict[str, tuple[int, int]]:
    photos = iter_image_files(gallery)
    sample = random.Random(seed).sample(photos, n)
    out: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in TRANSFORMS.items():
            hit = 0
            for k, p in enumerate(sample):
                img = load_image(p)
                if make is None:
                    buf = io.BytesIO()
                    img.save(buf, "PNG")
                    data, ext = buf.getvalue(), ".png"
                else:
                    data, ext = make(img), ".jpg"
                copy = Path(tmp, f"copy{k}{ext}")
                copy.write_bytes(data)
                a = examine(Entry(p, f"a/{p.name}", "a", None, "image"))
                b = examine(Entry(copy, f"b/{copy.name}", "b", None, "image"))
                hit += bool(find_duplicates([a, b]))
            out[name] = (hit, len(sample))
            print(f"{name}: {hit}/{len(sample)}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "landmarks"
    )
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "dataset_duplicates.md"
    )
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    indian = args.shared / "indian-monuments"
    lines = ["# Near-duplicate detection (`landmark-finder dataset clean`)", ""]
    t = time.time()
    rec = recall(indian / "gallery", args.n, args.seed)
    lines += [
        f"## Recall on copies of {args.n} random gallery photos (seed {args.seed})",
        "",
        "| copy | found |",
        "|---|---|",
    ]
    lines += [f"| {k} | {h}/{n} ({h / n:.0%}) |" for k, (h, n) in rec.items()]
    t_rec = time.time() - t
    t = time.time()
    entries = [e for e in scan_tree(indian) if e.rel.split("/")[0] in ("gallery", "queries")]
    photos = examine_all(entries)
    t_read = time.time() - t
    t = time.time()
    groups = find_duplicates(photos)
    t_dup = time.time() - t
    n_g = sum(p.entry.folder_split == "gallery" for p in photos)
    n_q = len(photos) - n_g
    lines += [
        "",
        f"## Groups found among all {len(photos)} gallery + query photos",
        "",
        f"{n_g} gallery and {n_q} query photos: {n_g * (n_g - 1) // 2:,} gallery-gallery pairs, "
        f"{n_g * n_q:,} gallery-query pairs. Reading + hashing {t_read:.0f} s, grouping "
        f"{t_dup:.0f} s "
        f"(2 cores, shared machine).",
        "",
        "| group | photos | evidence |",
        "|---|---|---|",
    ]
    for g in groups:
        lines.append(
            f"| {g.id} | {'<br>'.join(p.entry.rel for p in g.members)} | "
            f"{'<br>'.join(g.evidence[p.entry.rel] for p in g.members)} |"
        )
    lines += ["", f"Recall part took {t_rec:.0f} s."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Benchmark a recognizer on folders of labelled query photos.

A sub-folder of a queries directory whose name is a landmark with reference photos in the index
holds photos of that landmark; every other photo (other sub-folders, loose files) shows no
landmark the index knows, and the right answer for it is "unknown".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from landmark_finder.core.images import iter_image_files
from landmark_finder.core.metrics import (
    auroc,
    coverage_at_precision,
    expected_calibration_error,
    gap,
)
from landmark_finder.core.naming import is_augmented
from landmark_finder.core.progress import Progress
from landmark_finder.recognition.recognizer import Recognition, Recognizer


@dataclass
class EvalResult:
    top1_accuracy: float
    gap: float
    auroc: float
    coverage_at_99_precision: float
    n_known: int
    n_unknown: int
    latency_ms_p50: float

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class EvalDetails:
    """What the table shows beyond the contract keys."""

    n_errors: int = 0
    answered: int = 0  # queries answered with a landmark (confidence >= threshold)
    answered_precision: float = float("nan")
    unknown_answered: int = 0  # no-landmark queries wrongly given a landmark
    ece: float = float("nan")
    n_gallery: int = 0
    verification_rate: float = float("nan")  # share of queries verified (when verifying)
    site_answers: int = 0  # answered with a site ("one of these landmarks")
    site_answers_right: int = 0  # ... whose members include the photo's landmark
    outcomes: list[tuple[str, str | None, Recognition]] = field(default_factory=list)


def collect_queries(dirs: list[Path], known_ids: set[str]) -> list[tuple[Path, str | None]]:
    """(photo, true landmark id or None) for every photo under the query folders."""
    out: list[tuple[Path, str | None]] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            out.append((d, None))
            continue
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: queries folder not found")
        for p in iter_image_files(d):
            if is_augmented(p):
                continue  # made by `dataset augment`: not an independent photo
            rel = p.relative_to(d)
            truth = rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in known_ids else None
            out.append((p, truth))
    return out


def few_shot_rows(recognizer: Recognizer, k: int, seed: int = 0) -> np.ndarray:
    """Gallery rows keeping at most ``k`` reference photos per landmark, chosen at random."""
    rng = np.random.default_rng(seed)
    labels = recognizer.index.row_labels()
    rows = [rng.permutation(np.flatnonzero(labels == lab))[:k] for lab in np.unique(labels)]
    return np.sort(np.concatenate(rows))


def evaluate(
    recognizer: Recognizer,
    query_dirs: list[Path],
    max_refs_per_landmark: int | None = None,
    progress: Progress | None = None,
    seed: int = 0,
) -> tuple[EvalResult, EvalDetails]:
    if max_refs_per_landmark:
        sub = recognizer.index.subset(few_shot_rows(recognizer, max_refs_per_landmark, seed))
        recognizer = Recognizer(
            sub,
            recognizer.extractor,
            recognizer.verify,
            recognizer.verify_config.landmarks,
            recognizer.always_verify,
        )
    queries = collect_queries(query_dirs, set(recognizer.index.landmark_ids))
    outcomes = []
    for i, (path, t) in enumerate(queries):
        outcomes.append((str(path), t, recognizer.recognize(path)))
        if progress:
            progress(i + 1, len(queries))
    return summarize(outcomes, len(recognizer.index.records))


def summarize(
    outcomes: list[tuple[str, str | None, Recognition]], n_gallery: int = 0
) -> tuple[EvalResult, EvalDetails]:
    """The benchmark's figures from (photo, true landmark or None, recognition) triples."""
    details = EvalDetails(n_gallery=n_gallery, outcomes=list(outcomes))
    truth, correct, conf, answered, lat = [], [], [], [], []
    for _, t, r in outcomes:
        if r.status == "error":
            details.n_errors += 1
            continue
        top = r.candidates[0].landmark.id if r.candidates else None
        truth.append(t is not None)
        correct.append(t is not None and top == t)
        conf.append(r.confidence)
        answered.append(r.status == "recognized")
        lat.append(r.elapsed_ms)
        if r.status == "site" and r.site is not None:
            details.site_answers += 1
            details.site_answers_right += t in r.site.members
    if any(r.verified or r.verification_skipped for _, _, r in outcomes):  # a verifying run
        details.verification_rate = float(np.mean([r.verified for _, _, r in outcomes]))
    known = np.array(truth, bool)
    correct_a = np.array(correct, bool)
    conf_a = np.array(conf, float)
    ans = np.array(answered, bool)
    n_known = int(known.sum())
    details.answered = int(ans.sum())
    details.answered_precision = float(correct_a[ans].mean()) if ans.any() else float("nan")
    details.unknown_answered = int((ans & ~known).sum())
    details.ece = expected_calibration_error(correct_a, conf_a)
    result = EvalResult(
        top1_accuracy=float(correct_a[known].mean()) if n_known else float("nan"),
        gap=gap(correct_a, conf_a, n_known),
        auroc=auroc(known, conf_a),
        coverage_at_99_precision=coverage_at_precision(correct_a, conf_a, n_known, 0.99),
        n_known=n_known,
        n_unknown=int((~known).sum()),
        latency_ms_p50=float(np.median(lat)) if lat else float("nan"),
    )
    return result, details

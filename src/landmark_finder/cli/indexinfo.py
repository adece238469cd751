"""The rows of ``landmark-finder index info``: what an index holds and how it was built, in the
reader's language (kept apart from the index commands so each module stays short)."""

from __future__ import annotations

import json

from landmark_finder.i18n import _, n_photos, ngettext


def info_rows(idx) -> list[tuple[str, str]]:
    """(label, value) pairs describing the opened :class:`Index` ``idx``."""
    ids = idx.landmark_ids
    yes, no = _("yes"), _("no")
    if idx.local is None:
        local = _("none (no geometric verification)")
    else:
        local = _("{method}, up to {n} per photo, {kib} KiB per photo on average").format(
            method=idx.local.config.method,
            n=idx.local.config.max_keypoints,
            kib=f"{idx.local.bytes_per_photo / 1024:.0f}",
        )
    if idx.version.startswith("v-"):
        storage = _("format 1 ({version}); `landmark-finder index upgrade` converts it")
    else:
        storage = _("format 2, {segments}, {removed} awaiting compaction")
    removed = sum(len(s.deleted) for s in idx.segments)
    storage = storage.format(
        version=idx.version,
        segments=ngettext("{n} segment", "{n} segments", len(idx.segments)).format(
            n=len(idx.segments)
        ),
        removed=ngettext("{n} removed photo", "{n} removed photos", removed).format(n=removed),
    )
    rows = [
        (_("backbone"), idx.backbone),
        (_("weights"), idx.weights_hash[:16]),
        (_("preprocessing"), json.dumps(idx.preprocessing.to_dict())),
        (_("photos"), str(len(idx.records))),
        (_("landmarks with photos"), str(len(ids))),
        (_("catalog rows"), str(len(idx.catalog))),
        (
            _("catalog rows without photos"),
            ", ".join(lm.id for lm in idx.catalog if lm.id not in set(ids)) or "-",
        ),
        (_("whitening"), yes if idx.whitening is not None else no),
        (_("search"), idx.search_kind),
        (_("distractors"), str(0 if idx.distractors is None else len(idx.distractors))),
        (_("calibration"), json.dumps(idx.calibration_report)),
        (_("local features"), local),
        (_("verification"), "-" if idx.verified is None else _verification_line(idx.verified)),
        (_("verification skipped"), "-" if idx.verified is None else _skip_line(idx.verified.skip)),
        (_("unknown below confidence"), f"{idx.calibrator.threshold:.2f}"),
        (_("storage"), storage),
        (_("decision model fitted on"), _fitted_line(idx)),
        (
            _("refit pending"),
            _("yes: run `landmark-finder index refit`") if idx.refit_pending else no,
        ),
        (_("created"), idx.created),
    ]
    return rows


def _fitted_line(idx) -> str:
    """Photos the decision model was fitted on, and how many changed since."""
    text = _("{photos}; {changed} added or removed since (refitted when {due} have been)")
    return text.format(
        photos=n_photos(idx.fitted_photos), changed=idx.changed_since_fit, due=idx.refit_after
    )


def _skip_line(rule) -> str:
    if rule.above is None and rule.below is None:
        return _("never (rebuild the index to fit when it may be)")
    sides = [
        _("global confidence ≥ {x}").format(x=f"{rule.above:.3f}")
        if rule.above is not None
        else "",
        f"< {rule.below:.3f}" if rule.below is not None else "",
    ]
    return _(
        "when {condition}; cross-validation: {rate} of queries verified, {changed} answers changed"
    ).format(
        condition=_(" or ").join(x for x in sides if x),
        rate=f"{rule.cv_verify_rate:.0%}",
        changed=rule.cv_changed,
    )


def _verification_line(v) -> str:
    c, f = v.config, v.fusion
    return _(
        "top {landmarks} landmarks × {refs} references, ratio {ratio}; score bonus "
        "{weight}·log1p(inliers − {offset}); chance level {chance} inliers; "
        "cross-validated top-1 {top1} (global alone {top1_global})"
    ).format(
        landmarks=c.landmarks,
        refs=c.refs,
        ratio=c.ratio,
        weight=f"{f.weight:g}",
        offset=f"{f.offset:g}",
        chance=f"{v.chance_inliers:.0f}",
        top1=f"{v.cv_top1:.3f}",
        top1_global=f"{v.cv_top1_global:.3f}",
    )

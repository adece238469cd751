"""Preparing a landmark photo collection: stats, clean, split, augment, collect.

Library side of ``landmark-finder dataset``; every photo is read through
:mod:`landmark_finder.core.images`, so these tools see exactly what indexing and recognition see.

- :mod:`.scan` — which file belongs to which landmark; reading and hashing each photo
- :mod:`.hashing`, :mod:`.match`, :mod:`.duplicates` — exact and near-duplicate groups
- :mod:`.stats` — counts, sizes, formats, problems, imbalance, bar chart
- :mod:`.clean` — offenders and the quarantine (never deletes)
- :mod:`.split` — leak-free stratified train/val/test split
- :mod:`.augment` — variants for small landmarks, marked by name and manifest
- :mod:`.collect`, :mod:`.commons`, :mod:`.http` — polite downloading with licences
"""

from landmark_finder.core.naming import AUG_MARKER, augmented_source_stem, is_augmented

__all__ = ["AUG_MARKER", "augmented_source_stem", "is_augmented"]

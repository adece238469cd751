"""Each default defined once: the library, the CLI, the desktop app and the web app read them
from here, and the CLI's help shows them (so a changed default cannot leave a stale help text).

This module imports nothing, so any layer may use it.
"""

from __future__ import annotations

#: Descriptor network of a new index: the most accurate of the offline backbones.
BACKBONE = "efficientnet-lite2"
#: Long side, in pixels, photos are resized to before the network (indexes, training, explain).
INPUT_SIZE = 352
#: GeM pooling exponent.
GEM_P = 3.0
#: Keypoints for geometric verification: their kind, how many each gallery photo stores (its
#: strongest), and how many a query photo uses. Storing 450 instead of 1,000 (as 32-byte codes,
#: below) kept every verified benchmark figure within 0.001 or better, for 8x less disk and
#: about half the matching time (README, "Compact keypoints").
LOCAL_FEATURES = "sift"
MAX_KEYPOINTS = 450
QUERY_KEYPOINTS = 1000
#: Bytes each stored SIFT descriptor is compressed to (product quantisation; 0 = raw, 128
#: bytes): 36 instead of 132 bytes per keypoint, the verified benchmark unchanged.
KEYPOINT_CODE_BYTES = 32
#: Candidates listed per photo by `recognize`.
TOP_K = 5
#: Verify every photo geometrically (True), or only those whose global answer is not already
#: certain (False: the index's fitted skip rule; on the Indian-monuments benchmark 10 % of
#: photos are verified, every accuracy figure within 0.005 of verifying all, p50 4× faster).
ALWAYS_VERIFY = False

#: A change refits the decision model by itself once the photos added or removed since the last
#: fit reach this share of the photos it was fitted on. Smaller changes are searched at once but
#: keep the fitted whitening and calibration; a refit of a 100,000-photo index takes minutes
#: where adding 10 photos takes seconds. Measured on the Indian-monuments benchmark with a model
#: fitted before 5 % of the photos (or one whole landmark, 60 photos) were added: top-1, GAP
#: and AUROC within 0.005 of a refitted model, coverage at 99 % precision 0.02-0.04 lower;
#: hence 2 %.
REFIT_SHARE = 0.02

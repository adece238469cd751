"""Every error landmark-finder raises on purpose derives from :class:`LandmarkFinderError`.

A shell (CLI, web app, desktop app) catches the base class and shows ``str(error)``: each
message is one line (or one line per problem) that says what is wrong and what to do. The
subclasses let a caller react to one kind of problem. Classes that used to be ``ValueError``
still are, so code that caught ``ValueError`` keeps working.

This module imports nothing from the package, so any layer may raise these.
"""

from __future__ import annotations

#: A catalog error lists at most this many problems (then "... and N more problems").
MAX_CATALOG_PROBLEMS = 50  # past this the file is probably in the wrong format


class LandmarkFinderError(Exception):
    """Base of the errors raised on purpose; ``str()`` is the message to show a user."""


class ImageLoadError(LandmarkFinderError):
    """An input that cannot be turned into an image; str() is `<file>: <reason>`."""

    def __init__(self, filename: str, reason: str) -> None:
        self.filename = " ".join(str(filename).split()) or "<unnamed>"
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.filename}: {self.reason}")


class CatalogError(LandmarkFinderError, ValueError):
    """Every problem found in a catalog file, one `file:line: message` per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        shown = problems[:MAX_CATALOG_PROBLEMS]
        if len(problems) > MAX_CATALOG_PROBLEMS:
            shown.append(f"... and {len(problems) - MAX_CATALOG_PROBLEMS} more problems")
        super().__init__("\n".join(shown))


class LandmarkIndexError(LandmarkFinderError):
    """An index cannot be opened or written; the message says why and what to do."""


class IndexVersionError(LandmarkIndexError):
    """The index was written by a newer landmark-finder (its format version is unknown)."""


class IndexBusy(LandmarkIndexError):
    """Another process is writing the index and the caller asked not to wait."""


class WeightsMismatchError(LandmarkIndexError, ValueError):
    """The installed network weights are not the ones an index (or model) was built with:
    descriptors of different weights cannot be compared."""


class BackboneError(LandmarkFinderError, ValueError):
    """A backbone or trained model that cannot be loaded (unknown name, bad model directory)."""


class MissingDependencyError(LandmarkFinderError, RuntimeError):
    """An optional package (or a weights package) a feature needs is not installed; the message
    says what to install."""


class TrainingInterrupted(LandmarkFinderError):
    """Ctrl-C during training: the checkpoint was saved; ``--resume`` continues."""


class DenseUnsupported(LandmarkFinderError, ValueError):
    """The index's backbone has no spatial feature map (e.g. a ViT's CLS token)."""


class FetchError(LandmarkFinderError):
    """A URL that could not be fetched; str() is one line: ``<url>: <reason>``."""

    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"{url}: {reason}")


class CollectListError(LandmarkFinderError, ValueError):
    """The input CSV itself is unusable (missing, no landmark_id/url columns)."""

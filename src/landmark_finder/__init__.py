"""landmark-finder: name the landmark in a photo from its pixels alone."""

__version__ = "0.1.0"

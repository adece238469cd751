"""Web service and browser app: ``landmark-finder serve INDEX`` or ``create_app(index)``."""

from landmark_finder.web.app import DEFAULT_MAX_UPLOAD_BYTES, create_app

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "create_app"]

"""Tagging a photo library: the photos people already have, answered in place.

``tag`` walks folders of photos, recognizes each one (in parallel, resumably, with a SQLite
record of what was done), writes the answer where photo tools look for it (XMP sidecars or
the file's own XMP), and reports which photos carry a GPS tag far from the landmark their
pixels show. Modules: ``scan`` (which files), ``db`` (the resumable record), ``describe``
(recognition in worker processes), ``xmp`` (metadata through exiftool), ``tagger`` (the run),
``report`` (CSV/JSONL/GeoJSON rows) and ``html`` (the map page).
"""

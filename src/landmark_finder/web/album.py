"""Checking an album in the browser: several photos in, one row per photo and a map out.

The same rows as ``landmark-finder tag --report`` (the library's ``report.row``), for people
without the command line; nothing is written anywhere. The page is ``/static/album.html``.
The endpoint's path ends in ``/photos`` so the server's body limit for several photos per
request applies to it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, File, HTTPException, Query, UploadFile

from landmark_finder.library.describe import describe_source
from landmark_finder.library.report import row
from landmark_finder.library.tagger import DEFAULT_MAX_KM, record_for
from landmark_finder.web.admin import MAX_PHOTOS_PER_REQUEST
from landmark_finder.web.schemas import ErrorOut
from landmark_finder.web.state import IndexHolder
from landmark_finder.web.uploads import read_upload


def album_router(holder: IndexHolder, max_upload_bytes: int) -> APIRouter:
    router = APIRouter(tags=["recognition"])

    @router.post(
        "/api/album/photos",
        responses={413: {"model": ErrorOut}, 422: {"model": ErrorOut}, 400: {"model": ErrorOut}},
    )
    def album(
        photos: list[UploadFile] = File(
            ..., description=f"Photos of an album (at most {MAX_PHOTOS_PER_REQUEST})"
        ),
        max_km: float = Query(DEFAULT_MAX_KM, gt=0, description="GPS mismatch distance"),
    ) -> dict:
        """One row per photo (landmark, confidence, the photo's own GPS tag and its distance
        to the landmark, ``gps_mismatch``); unreadable photos get a row with an error."""
        if len(photos) > MAX_PHOTOS_PER_REQUEST:
            raise HTTPException(422, f"at most {MAX_PHOTOS_PER_REQUEST} photos per request")
        s = holder.current
        threshold = float(s.index.calibrator.threshold)
        rows = []
        for upload in photos:
            data, name = read_upload(upload, max_upload_bytes)
            res = describe_source(s.recognizer, data, name)
            rec, _ = record_for(res, len(data), 0, threshold)
            r = row(rec, max_km)
            r["name"] = Path(name).name
            rows.append(r)
        return {"max_km": max_km, "rows": rows}

    return router

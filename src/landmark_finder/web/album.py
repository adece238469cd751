"""Checking an album in the browser: several photos in, one row per photo and a map out.

The same rows as ``landmark-finder tag --report`` (the library's ``report.row``), for people
without the command line; nothing is written anywhere. The page is ``/static/album.html``.
The endpoint's path ends in ``/photos`` so the server's body limit for several photos per
request applies to it. An album is one job of the server's recognition pool (503 with
``Retry-After`` when its queue is full) and each photo is decoded within the decode budget.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, File, HTTPException, Query, UploadFile

from landmark_finder.library.describe import describe_source
from landmark_finder.library.report import row
from landmark_finder.library.tagger import DEFAULT_MAX_KM, record_for
from landmark_finder.web.admin import MAX_PHOTOS_PER_REQUEST
from landmark_finder.web.pool import Busy, DecodeBudget, RecognitionPool, decoded_bytes
from landmark_finder.web.schemas import ErrorOut
from landmark_finder.web.state import IndexHolder
from landmark_finder.web.uploads import read_upload_async


def album_router(
    holder: IndexHolder, max_upload_bytes: int, pool: RecognitionPool, decodes: DecodeBudget
) -> APIRouter:
    router = APIRouter(tags=["recognition"])

    def rows_of(s, uploads: list[tuple[bytes, str]], max_km: float) -> list[dict]:
        threshold = float(s.index.calibrator.threshold)
        rows = []
        for data, name in uploads:
            with decodes.reserve(decoded_bytes(data)):
                res = describe_source(s.recognizer, data, name)
            rec, _ = record_for(res, len(data), 0, threshold)
            r = row(rec, max_km)
            r["name"] = Path(name).name
            rows.append(r)
        return rows

    @router.post(
        "/api/album/photos",
        responses={
            413: {"model": ErrorOut},
            422: {"model": ErrorOut},
            400: {"model": ErrorOut},
            503: {"model": ErrorOut},
        },
    )
    async def album(
        photos: list[UploadFile] = File(
            ..., description=f"Photos of an album (at most {MAX_PHOTOS_PER_REQUEST})"
        ),
        max_km: float = Query(DEFAULT_MAX_KM, gt=0, description="GPS mismatch distance"),
    ) -> dict:
        """One row per photo (landmark, confidence, the photo's own GPS tag and its distance
        to the landmark, ``gps_mismatch``); unreadable photos get a row with an error."""
        if len(photos) > MAX_PHOTOS_PER_REQUEST:
            raise HTTPException(422, f"at most {MAX_PHOTOS_PER_REQUEST} photos per request")
        uploads = [await read_upload_async(u, max_upload_bytes) for u in photos]
        try:
            job = pool.submit(rows_of, holder.current, uploads, max_km)
        except Busy as e:
            raise HTTPException(503, str(e), headers={"Retry-After": str(e.retry_after)}) from None
        return {"max_km": max_km, "rows": await asyncio.wrap_future(job)}

    return router

"""Admin endpoints: add or remove reference photos over the API, behind a Bearer token.

They call ``indexing.add_photos`` / ``remove_photos`` (the same code as ``landmark-finder index
add/remove``) and then swap in a recognizer for the new index version. Uploaded photos are
kept in ``<uploads>/<landmark id>/`` because the index refers to its photos by path.
Without a configured token the endpoints answer 403; with one, a missing or wrong
``Authorization: Bearer`` header gets 401 (compared in constant time). ``guards.AdminGate``
makes both checks, and the id check, before the request body is read; the endpoints repeat them.
Error messages name photos and ids, never a path on the server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
from pathlib import Path

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    HTTPException,
    Query,
    UploadFile,
)
from fastapi import (
    Path as PathParam,
)
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from landmark_finder.core.atomic import write_bytes_atomic as write_atomic
from landmark_finder.core.catalog import Catalog, CatalogError, Landmark, id_problem
from landmark_finder.core.images import ImageLoadError, image_info, load_image
from landmark_finder.recognition.index import LandmarkIndexError
from landmark_finder.recognition.indexing import add_photos, remove_photos
from landmark_finder.web.pool import DecodeBudget
from landmark_finder.web.schemas import ErrorOut, PhotosChanged
from landmark_finder.web.state import IndexHolder
from landmark_finder.web.uploads import read_upload

MAX_PHOTOS_PER_REQUEST = 20
_EXTENSIONS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "GIF": ".gif",
    "TIFF": ".tif",
    "HEIF": ".heic",
}
_bearer = HTTPBearer(
    auto_error=False,
    description="The token given to `serve --admin-token` (or LANDMARK_FINDER_ADMIN_TOKEN)",
)
_AUTH_ERRORS = {
    401: {"model": ErrorOut, "description": "Missing or wrong admin token"},
    403: {"model": ErrorOut, "description": "Admin endpoints disabled (no token configured)"},
}


def landmark_id_problem(landmark_id: str) -> str | None:
    """Ids become folder names under the uploads directory and cells of catalog.csv (which
    are stripped): refuse anything that is not one plain, visible, unpadded path component."""
    problem = id_problem(landmark_id)
    if problem is None and (
        len(landmark_id) > 200 or any(ord(c) < 32 or c == "\x7f" for c in landmark_id)
    ):
        problem = f"id {landmark_id!r} is too long or contains control characters"
    if problem is None and landmark_id != landmark_id.strip():
        problem = f"id {landmark_id!r} must not be blank or start or end with a space"
    return problem


def _check_id(landmark_id: str) -> None:
    if problem := landmark_id_problem(landmark_id):
        raise HTTPException(422, problem)


def _without_paths(message: str, *dirs: Path | None) -> str:
    """An error of the library may name files under the server's directories: show those as
    relative names, so a client never learns where the index lives."""
    for d in dirs:
        if d is not None:
            for form in {str(d.resolve()), str(d)}:
                message = message.replace(form + os.sep, "").replace(form, d.name)
    return message


def admin_router(
    holder: IndexHolder,
    token: str | None,
    max_upload_bytes: int,
    uploads: Path | None,
    decodes: DecodeBudget,
) -> APIRouter:
    def require_admin(cred: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        if token is None:
            raise HTTPException(403, "admin endpoints disabled")
        if cred is None or not hmac.compare_digest(cred.credentials.encode(), token.encode()):
            raise HTTPException(
                401, "missing or wrong admin token", headers={"WWW-Authenticate": "Bearer"}
            )

    router = APIRouter(
        prefix="/api/landmarks",
        tags=["admin"],
        dependencies=[Depends(require_admin)],
        responses=_AUTH_ERRORS,
    )

    @router.post(
        "/{landmark_id}/photos",
        response_model=PhotosChanged,
        responses={
            400: {"model": ErrorOut},
            409: {"model": ErrorOut},
            413: {"model": ErrorOut},
            422: {"model": ErrorOut},
        },
    )
    def add(
        landmark_id: str = PathParam(
            ..., description="Landmark id (new or existing); also its folder name"
        ),
        photos: list[UploadFile] = File(
            ..., description=f"Reference photos (at most {MAX_PHOTOS_PER_REQUEST})"
        ),
        name: str | None = Form(
            None, description="Display name (new landmark: defaults to the id)"
        ),
        address: str | None = Form(None),
        latitude: float | None = Form(None, ge=-90, le=90),
        longitude: float | None = Form(None, ge=-180, le=180),
        description: str | None = Form(None),
        url: str | None = Form(None),
    ) -> PhotosChanged:
        """Add reference photos of a new or known landmark; optional fields set its catalog row."""
        _check_id(landmark_id)
        if len(photos) > MAX_PHOTOS_PER_REQUEST:
            raise HTTPException(422, f"at most {MAX_PHOTOS_PER_REQUEST} photos per request")
        uploads_ok: list[bytes] = []
        for upload in photos:
            data, fname = read_upload(upload, max_upload_bytes)
            try:  # full decode (catches truncation), within the server's decode budget
                decodes.run(data, lambda d=data, n=fname: load_image(d, max_side=256, name=n))
            except ImageLoadError as e:
                raise HTTPException(422, str(e)) from None
            uploads_ok.append(data)
        fields = {
            k: v.strip() if isinstance(v, str) else v
            for k, v in {
                "name": name,
                "address": address,
                "latitude": latitude,
                "longitude": longitude,
                "description": description,
                "url": url,
            }.items()
            if v is not None
        }
        if not fields.get("name", True):
            del fields["name"]
        assert uploads is not None  # admin endpoints require an index path, hence an uploads dir
        folder = uploads / landmark_id
        with holder.write_lock:
            before = holder.current
            existing = before.index.catalog.get(landmark_id)
            catalog = None
            if fields or existing is None:
                row = (
                    dataclasses.replace(existing, **fields)
                    if existing is not None
                    else Landmark(id=landmark_id, name=fields.pop("name", landmark_id), **fields)
                )
                if (row.latitude is None) != (row.longitude is None):
                    raise HTTPException(
                        422, "latitude and longitude must both be given or both empty"
                    )
                catalog = Catalog([row])
            saved: list[Path] = []
            new_folder = not folder.exists()
            try:
                folder.mkdir(parents=True, exist_ok=True)
                for data in uploads_ok:
                    tmp = folder / f".incoming-{os.getpid()}.tmp"
                    write_atomic(tmp, data)  # hidden name: gallery scans skip it
                    fmt = image_info(tmp).format
                    path = (
                        folder
                        / f"{hashlib.sha256(data).hexdigest()[:20]}{_EXTENSIONS.get(fmt, '.jpg')}"
                    )
                    os.replace(tmp, path)
                    saved.append(path)
                report = add_photos(holder.index_path, [(landmark_id, p) for p in saved], catalog)
            except CatalogError as e:
                raise HTTPException(
                    422, _without_paths(str(e), holder.index_path, uploads)
                ) from None
            except (LandmarkIndexError, ImageLoadError) as e:
                raise HTTPException(
                    409, _without_paths(str(e), holder.index_path, uploads)
                ) from None
            finally:
                after = holder.reload()
                for p in saved:  # duplicates of indexed photos were skipped: do not keep them
                    if str(p.resolve()) not in after.rows_by_path:
                        p.unlink(missing_ok=True)
                if new_folder and folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()  # nothing was added: leave no empty folder behind
        lm = after.index.catalog[landmark_id]
        return PhotosChanged(
            landmark=after.landmark_out(lm),
            added=len(after.index.records) - len(before.index.records),
            skipped=report.skipped,
            warnings=report.warnings,
            index_photos=len(after.index.records),
            index_landmarks=len(after.photo_counts),
            model_refitted=report.refitted,
        )

    @router.delete(
        "/{landmark_id}/photos",
        response_model=PhotosChanged,
        responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    )
    def remove(
        landmark_id: str,
        row: list[int] = Query(
            [],
            description="Remove only these reference photos (row numbers "
            "from a photo URL); default: all photos of the landmark",
        ),
    ) -> PhotosChanged:
        """Remove reference photos; the catalog row stays (listed, never predicted)."""
        with holder.write_lock:
            s = holder.current
            records = s.index.records
            if landmark_id not in s.index.catalog:
                raise HTTPException(404, f"no landmark {landmark_id!r}")
            bad = [
                r for r in row if not 0 <= r < len(records) or records[r].landmark_id != landmark_id
            ]
            if bad:
                raise HTTPException(
                    404,
                    f"landmark {landmark_id!r} has no reference photo {', '.join(map(str, bad))}",
                )
            if not s.photo_counts.get(landmark_id):
                raise HTTPException(404, f"landmark {landmark_id!r} has no reference photos")
            try:
                removed, report = remove_photos(
                    holder.index_path,
                    [] if row else [landmark_id],
                    [Path(records[r].path) for r in row],
                )
            except LandmarkIndexError as e:
                raise HTTPException(409, str(e)) from None
            after = holder.reload() if removed else s
        return PhotosChanged(
            landmark=after.landmark_out(after.index.catalog[landmark_id]),
            removed=removed,
            skipped=report.skipped,
            warnings=report.warnings,
            index_photos=len(after.index.records),
            index_landmarks=len(after.photo_counts),
            model_refitted=report.refitted,
        )

    return router

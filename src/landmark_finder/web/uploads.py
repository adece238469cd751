"""Reading uploaded photos (size-checked, empty refused) and keeping them on disk atomically."""

from __future__ import annotations

from fastapi import HTTPException, UploadFile

from landmark_finder.web.limits import too_large_message


def upload_name(upload: UploadFile) -> str:
    """The client's file name without any directory part (it is untrusted and only shown)."""
    raw = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return " ".join(raw.split())[:200] or "upload"


def read_upload(upload: UploadFile, max_bytes: int) -> tuple[bytes, str]:
    """Bytes and display name of an upload; 413 over the limit, 400 when empty."""
    name = upload_name(upload)
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, f"{name}: {too_large_message(max_bytes)}")
    if not data:
        raise HTTPException(400, f"{name}: empty file")
    return data, name


async def read_upload_async(upload: UploadFile, max_bytes: int) -> tuple[bytes, str]:
    """``read_upload`` for ``async`` endpoints (a photo spooled to disk is read off the loop)."""
    name = upload_name(upload)
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, f"{name}: {too_large_message(max_bytes)}")
    if not data:
        raise HTTPException(400, f"{name}: empty file")
    return data, name

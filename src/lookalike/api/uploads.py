"""Reading uploaded files within the size limit."""

from __future__ import annotations

from fastapi import HTTPException, status
from starlette.datastructures import UploadFile

CHUNK = 1 << 16


def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """The upload's bytes; 413 as soon as it exceeds ``max_bytes``, 400 when it is empty."""
    parts: list[bytes] = []
    size = 0
    while chunk := upload.file.read(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"{upload.filename or 'upload'} is larger than the {max_bytes // 2**20} MB limit")
        parts.append(chunk)
    if size == 0:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{upload.filename or 'upload'} is empty")
    return b"".join(parts)

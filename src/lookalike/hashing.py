"""Content hashes used as cache keys and model checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def content_key(data: bytes) -> str:
    """The key of an image's bytes in the feature cache and the catalog (hex SHA-1, 40 chars)."""
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()

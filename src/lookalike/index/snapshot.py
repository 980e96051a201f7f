"""Atomic, verifiable on-disk generations of an index: ``ROOT/gen-N/`` plus a ``ROOT/CURRENT`` pointer.

A save writes a whole new generation folder (files, then ``manifest.json`` with their checksums), renames
it into place, then swaps ``CURRENT`` (the folder's name and the manifest's checksum). A crash at any point
leaves the previous generation current. On load every byte is verified: a truncated, altered or missing file,
or a missing or damaged ``CURRENT``, raises :class:`IndexCorruptError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lookalike.beacon import Beacon
from lookalike.errors import IndexCorruptError
from lookalike.hashing import file_sha256
from lookalike.io.files import fsync, write_atomically

CURRENT = "CURRENT"
BEACON = "CURRENT.changes"  # signalled after every swap of CURRENT (lookalike.beacon)
MANIFEST = "manifest.json"
KEEP_PREVIOUS = 1
POINTER = re.compile(r"(gen-\d{6,})(?: ([0-9a-f]{64}))?")  # the checksum is absent in indexes saved before it
REBUILD_HINT = "rebuild it from the catalog with `lookalike ingest --reindex`"


def write_generation(root: Path, writers: dict[str, Callable[[Path], None]], manifest: dict[str, Any]) -> Path:
    """Write a new generation: ``writers[name](path)`` creates each file; returns the generation folder."""
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    number = max((int(p.name[4:]) for p in root.glob("gen-*") if p.name[4:].isdigit()), default=0) + 1
    name = f"gen-{number:06d}"
    tmp = root / f".tmp-{name}"
    tmp.mkdir()
    checksums = {}
    for filename, write in writers.items():
        write(tmp / filename)
        fsync(tmp / filename)
        checksums[filename] = file_sha256(tmp / filename)
    full = {**manifest, "files": checksums, "saved_at": time.time()}
    manifest_bytes = json.dumps(full, indent=2).encode()
    (tmp / MANIFEST).write_bytes(manifest_bytes)
    fsync(tmp / MANIFEST)
    final = root / name
    os.replace(tmp, final)
    write_atomically(root / CURRENT, f"{name} {hashlib.sha256(manifest_bytes).hexdigest()}")
    pointer_beacon(root).signal()
    generations = sorted(p for p in root.glob("gen-*") if p.is_dir() and p.name != name)
    for old in generations[: max(0, len(generations) - KEEP_PREVIOUS)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def pointer_stamp(root: Path) -> str | None:
    """Names the saved generation, cheaply (one small read): the text of ``CURRENT``, unique per save since
    generation numbers only grow; None when nothing was saved or it cannot be read now."""
    try:
        return (root / CURRENT).read_bytes().decode("ascii", "replace")
    except OSError:
        return None


def pointer_beacon(root: Path) -> Beacon:
    """The beacon of ``root``'s pointer: readers of :func:`pointer_stamp` need not read it while the beacon stays."""
    return Beacon(root / BEACON)


def current_generation(root: Path) -> Path | None:
    """The folder ``CURRENT`` points to, or None when nothing was ever saved."""
    return _read_pointer(root)[0]


def _read_pointer(root: Path) -> tuple[Path | None, str | None]:
    """(generation folder, manifest checksum or None) that ``CURRENT`` names."""
    pointer = root / CURRENT
    if not pointer.is_file():
        if any(root.glob("gen-*")):
            raise IndexCorruptError(f"the index in {root} has saved generations but no {CURRENT} file: {REBUILD_HINT}")
        return None, None
    try:
        text = pointer.read_bytes().decode("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"unreadable index pointer {pointer} ({exc}): {REBUILD_HINT}") from None
    match = POINTER.fullmatch(text)
    if match is None:
        raise IndexCorruptError(f"index pointer {pointer} is damaged ({text[:80]!r}): {REBUILD_HINT}")
    folder = root / match.group(1)
    if not folder.is_dir():
        raise IndexCorruptError(f"{pointer} points to a missing generation {folder.name}: {REBUILD_HINT}")
    return folder, match.group(2)


def read_current(root: Path) -> tuple[Path, dict[str, Any]] | None:
    """The current generation's folder and verified manifest, or None when nothing was ever saved."""
    folder, manifest_sha = _read_pointer(root)
    return None if folder is None else (folder, read_manifest(folder, manifest_sha))


def read_manifest(folder: Path, expected_sha: str | None = None) -> dict[str, Any]:
    """The generation's manifest, after checking it (against ``expected_sha``) and every file it lists."""
    try:
        raw = (folder / MANIFEST).read_bytes()
        manifest = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"unreadable index manifest in {folder}: {exc}; {REBUILD_HINT}") from None
    if expected_sha and hashlib.sha256(raw).hexdigest() != expected_sha:
        raise IndexCorruptError(f"index manifest in {folder} was altered (checksum mismatch): {REBUILD_HINT}")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise IndexCorruptError(f"index manifest in {folder} is malformed: {REBUILD_HINT}")
    for filename, expected in manifest["files"].items():
        path = folder / filename
        if not path.is_file():
            raise IndexCorruptError(f"index file missing: {path}; {REBUILD_HINT}")
        if file_sha256(path) != expected:
            raise IndexCorruptError(f"index file {path} is corrupt or truncated (checksum mismatch): {REBUILD_HINT}")
    return manifest

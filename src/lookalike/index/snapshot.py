"""Atomic, verifiable on-disk generations of an index: ``ROOT/gen-N/`` plus a ``ROOT/CURRENT`` pointer.

A save writes a whole new generation folder (files, then ``manifest.json`` with their checksums), renames
it into place, then swaps ``CURRENT``. A crash at any point leaves the previous generation current.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lookalike.errors import IndexCorruptError
from lookalike.hashing import file_sha256

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
KEEP_PREVIOUS = 1


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        _fsync(tmp / filename)
        checksums[filename] = file_sha256(tmp / filename)
    full = {**manifest, "files": checksums, "saved_at": time.time()}
    (tmp / MANIFEST).write_text(json.dumps(full, indent=2))
    _fsync(tmp / MANIFEST)
    final = root / name
    os.replace(tmp, final)
    pointer = root / f".{CURRENT}.tmp"
    pointer.write_text(name)
    _fsync(pointer)
    os.replace(pointer, root / CURRENT)
    _fsync(root)
    generations = sorted(p for p in root.glob("gen-*") if p.is_dir() and p.name != name)
    for old in generations[: max(0, len(generations) - KEEP_PREVIOUS)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def current_generation(root: Path) -> Path | None:
    """The folder ``CURRENT`` points to, or None when nothing was ever saved."""
    pointer = root / CURRENT
    if not pointer.is_file():
        return None
    folder = root / pointer.read_text().strip()
    if not folder.is_dir():
        raise IndexCorruptError(f"{pointer} points to a missing generation {folder.name}")
    return folder


def read_manifest(folder: Path, verify: bool = True) -> dict[str, Any]:
    """The generation's manifest, after checking every file against its recorded checksum."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"unreadable index manifest in {folder}: {exc}") from exc
    if verify:
        for filename, expected in manifest.get("files", {}).items():
            path = folder / filename
            if not path.is_file():
                raise IndexCorruptError(f"index file missing: {path}")
            if file_sha256(path) != expected:
                raise IndexCorruptError(f"index file {path} is corrupt or truncated (checksum mismatch)")
    return manifest

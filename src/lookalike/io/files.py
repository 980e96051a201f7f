"""File names made from model names and fingerprints, and atomic file writes.

An atomic write goes to a uniquely named temporary file beside the destination (``.<name>.<random>.tmp<suffix>``,
so concurrent writers never share one), which is fsynced and renamed onto the destination: readers see the old
file or the new one whole, never a part. A failed write removes its temporary file and leaves the destination as
it was.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def safe_file_name(text: str) -> str:
    """``text`` with every character but letters, digits, ``-``, ``_`` and ``.`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


@contextlib.contextmanager
def atomic_write(path: Path, *, durable: bool = True) -> Iterator[BinaryIO]:
    """Replace ``path`` with what is written to the yielded binary file, when the block ends without error.
    ``durable`` False skips the fsyncs: a killed process still cannot leave a part of the file, but a machine that
    loses power may lose the file (for data that can be fetched again, thousands of files at a time)."""
    tmp = _temp_beside(path)
    try:
        with tmp.open("wb") as file:
            yield file
            if durable:
                file.flush()
                os.fsync(file.fileno())
        _commit(tmp, path, durable)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Replace ``path`` with the file the block writes at the yielded path (for writers that take a path).

    The path is an existing empty file with ``path``'s suffix, so ``np.save`` and the like add none.
    """
    tmp = _temp_beside(path)
    try:
        yield tmp
        fsync(tmp)
        _commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` (a ``str`` is written as UTF-8)."""
    with atomic_write(path) as file:
        file.write(data.encode("utf-8") if isinstance(data, str) else data)


def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # what a plain open() gives a new file; mkstemp makes it owner-only
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def fsync(path: Path) -> None:
    """Flush a file's (or a folder's) contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def forget_leftovers(folder: Path, prefix: str) -> None:
    """Remove what processes that died left in ``folder`` as ``<prefix><pid>`` (a live one's stays)."""
    for leftover in folder.glob(f"{prefix}*"):
        pid = leftover.name.removeprefix(prefix)
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(leftover, ignore_errors=True)


def _commit(tmp: Path, path: Path, durable: bool = True) -> None:
    os.replace(tmp, path)
    if durable and os.name == "posix":  # a directory cannot be opened for fsync on Windows
        with contextlib.suppress(OSError):  # nor fsynced on every file system
            fsync(path.parent)


@functools.cache
def _umask() -> int:
    """The process umask, read from /proc where it can be (setting it to read it is not thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

"""Change beacons: a file of 8 bytes that every writer of something shared on disk (the catalog's SQLite database,
an index's saved generations) overwrites with a new random value after each change, and that readers map into
memory, so that a reader can tell that nothing changed without a system call.

Every search checks that the catalog and the index are current. Asking (an SQL statement, reading the index's
``CURRENT`` file) costs little CPU alone, but each of its system calls lets go of Python's GIL, and under load each
such hand-over costs thread switches: BENCHMARKS.md. :class:`Watched` asks again only when the beacon moved, and at
least every ``RECHECK_S`` whatever the beacon says, so a change the beacon missed (a writer that died between its
commit and its signal, files replaced by hand) is seen within that time.
"""

from __future__ import annotations

import mmap
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
RECHECK_S = 1.0  # the longest a reader trusts a beacon that did not move
SIZE = 8


class Beacon:
    """The beacon file at ``path`` (created on first use); one that cannot be opened or mapped reads as None,
    which makes readers always ask."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._map: mmap.mmap | None = None
        self._opened = False
        self._lock = threading.Lock()

    def signal(self) -> None:
        """Tell readers that something changed (after the change is committed); best effort: readers ask again
        within ``RECHECK_S`` anyway."""
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            os.pwrite(descriptor, secrets.token_bytes(SIZE), 0)
        except OSError:
            pass
        finally:
            os.close(descriptor)

    def read(self) -> bytes | None:
        """The beacon's current value, or None when there is no usable beacon."""
        if not self._opened:
            self._open()
        return None if self._map is None else self._map[:SIZE]

    def close(self) -> None:
        with self._lock:
            if self._map is not None:
                self._map.close()
            self._map, self._opened = None, True

    def _open(self) -> None:
        with self._lock:
            if self._opened:
                return
            self._opened = True
            try:
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                return
            try:
                if os.fstat(descriptor).st_size < SIZE:
                    os.ftruncate(descriptor, SIZE)  # only ever grows it: a value written meanwhile stays
                self._map = mmap.mmap(descriptor, SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
            except (OSError, ValueError):
                self._map = None
            finally:
                os.close(descriptor)


class Watched(Generic[T]):
    """``read()``'s value, read again only when ``beacon`` moved since the last read, or ``recheck_s`` passed (with
    no beacon: every time). ``read`` must be safe to call from several threads at once."""

    def __init__(self, read: Callable[[], T], beacon: Beacon | None, recheck_s: float | None = None) -> None:
        self._read = read
        self.beacon = beacon
        self.recheck_s = RECHECK_S if recheck_s is None else recheck_s
        self._last: tuple[bytes, float, T] | None = None  # (beacon before the read, when, value)

    def __call__(self) -> T:
        signal = self.beacon.read() if self.beacon is not None else None
        if signal is None:
            return self._read()
        now = time.monotonic()
        last = self._last
        if last is not None and last[0] == signal and now - last[1] < self.recheck_s:
            return last[2]
        value = self._read()  # a change signalled from here on moves the beacon past ``signal``: read again then
        self._last = (signal, now, value)
        return value

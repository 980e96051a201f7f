"""A write lock shared by the threads of this process and every process serving the same home."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from filelock import FileLock


class WriteLock:
    """Exclusive catalog changes: a :class:`filelock.FileLock` on ``path`` (server workers are processes).

    It is reentrant within a thread, through any ``WriteLock`` on the same path (the ``FileLock`` is a per-path
    singleton), and excludes other threads and processes; it never times out.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # The lock file stays on release: unlinking it would let a later process lock a different file.
        self._file = FileLock(path, mode=0o644, is_singleton=True, preserve_lock_file=True, poll_interval=0.01)

    def __enter__(self) -> WriteLock:
        self._file.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._file.release()

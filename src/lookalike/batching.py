"""Opportunistic micro-batching: concurrent callers share one batched call of an expensive function.

The callers run the calls themselves (no batcher thread): a caller that finds fewer than ``runners`` calls in
progress takes everything waiting with its key, its own rows included, and runs it; the others wait for their
rows. So a lone request runs at once on its own thread (no hand-over to another thread and back), while under
concurrent load the requests that arrive during one call form the next batch. The server batches two things this
way: backbone passes (several times cheaper per image in a batch on CPU) and exact index searches (a batch reads
the stored vectors from memory once instead of once per query; BENCHMARKS.md). Only submissions with the same
``key`` share a call.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, cast

import numpy as np

Out = TypeVar("Out")  # an array, or a tuple of arrays, with a row per input row
BatchFn = Callable[[np.ndarray], np.ndarray]


class _Entry:
    __slots__ = ("done", "error", "key", "result", "rows")

    def __init__(self, rows: np.ndarray, key: Hashable) -> None:
        self.rows, self.key = rows, key
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class MicroBatcher(Generic[Out]):
    """Calls ``fn(rows, key)`` on the concatenated rows of concurrent submissions with the same ``key``, up to
    ``max_batch`` rows, with at most ``runners`` calls at once; ``fn`` returns one array, or a tuple of arrays, with
    a row per input row."""

    def __init__(self, fn: Callable[[np.ndarray, Hashable], Out], max_batch: int = 32, runners: int = 1,
                 observe: Callable[[int], None] | None = None) -> None:
        """``observe`` is told each call's number of rows."""
        if runners < 1:
            raise ValueError(f"runners must be at least 1, got {runners}")
        self._fn: Callable[[np.ndarray, Hashable], Out] = fn
        self._max_batch = max_batch
        self._runners = runners
        self._changed = threading.Condition()
        self._waiting: deque[_Entry] = deque()
        self._running = 0
        self._closed = False
        self._observe = observe

    @classmethod
    def of(cls, fn: BatchFn, max_batch: int = 32, runners: int = 1,
           observe: Callable[[int], None] | None = None) -> MicroBatcher[np.ndarray]:
        """A batcher of a plain rows -> rows function (every call shares one key)."""
        return MicroBatcher(lambda rows, _: fn(rows), max_batch, runners, observe)

    def __call__(self, rows: np.ndarray, key: Hashable = None) -> Out:
        """``fn(rows, key)``, computed together with whatever else is waiting; re-raises ``fn``'s error."""
        entry = _Entry(rows, key)
        with self._changed:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._waiting.append(entry)
            while not entry.done:
                if self._running < self._runners and self._waiting:
                    self._run(self._take())
                else:
                    self._changed.wait()
        if entry.error is not None:
            raise entry.error
        return cast(Out, entry.result)

    def close(self) -> None:
        """Refuse new calls (those already submitted finish)."""
        with self._changed:
            self._closed = True

    def _take(self) -> list[_Entry]:
        """The oldest waiting entry and the later ones with its key, up to ``max_batch`` rows (lock held)."""
        first = self._waiting.popleft()
        batch, size, rest = [first], len(first.rows), deque[_Entry]()
        for entry in self._waiting:
            if entry.key == first.key and size + len(entry.rows) <= self._max_batch:
                batch.append(entry)
                size += len(entry.rows)
            else:
                rest.append(entry)
        self._waiting = rest
        return batch

    def _run(self, batch: list[_Entry]) -> None:
        """Run one batch with the lock released, then wake the waiters (lock held on entry and exit)."""
        self._running += 1
        self._changed.release()
        try:
            self._execute(batch)
        finally:
            self._changed.acquire()
            self._running -= 1
            self._changed.notify_all()

    def _execute(self, batch: list[_Entry]) -> None:
        try:
            rows = batch[0].rows if len(batch) == 1 else np.concatenate([entry.rows for entry in batch])
            if self._observe is not None:
                self._observe(len(rows))
            out = self._fn(rows, batch[0].key)
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of this batch
            for entry in batch:
                entry.error, entry.done = exc, True
            return
        start = 0
        for entry in batch:
            end = start + len(entry.rows)
            entry.result = out[start:end] if isinstance(out, np.ndarray) else tuple(o[start:end] for o in out)  # type: ignore[attr-defined]
            entry.done = True
            start = end

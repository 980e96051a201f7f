"""Opportunistic micro-batching: concurrent callers share one batched call of an expensive function.

A single worker thread runs ``fn`` on everything queued at the moment it becomes free, so a lone request
never waits for company (no added latency when idle), while under concurrent load the requests that arrive
during one call form the next batch. The server batches two things this way: backbone passes (about twice as
fast per image in a batch on CPU) and exact index searches (a batch reads the stored vectors from memory once
instead of once per query; BENCHMARKS.md). Only submissions with the same ``key`` share a call.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar, cast

import numpy as np

Out = TypeVar("Out")  # an array, or a tuple of arrays, with a row per input row
BatchFn = Callable[[np.ndarray], np.ndarray]
_Entry = tuple[np.ndarray, Hashable, "Future[Out]"]


class MicroBatcher(Generic[Out]):
    """Calls ``fn(rows, key)`` on the concatenated rows of concurrent submissions with the same ``key``, up to
    ``max_batch`` rows; ``fn`` returns one array, or a tuple of arrays, with a row per input row."""

    def __init__(self, fn: Callable[[np.ndarray, Hashable], Out], max_batch: int = 32,
                 name: str = "lookalike-batcher") -> None:
        self._fn: Callable[[np.ndarray, Hashable], Out] = fn
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Entry[Out] | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False
        self._worker.start()

    @classmethod
    def of(cls, fn: BatchFn, max_batch: int = 32, name: str = "lookalike-batcher") -> MicroBatcher[np.ndarray]:
        """A batcher of a plain rows -> rows function (every call shares one key)."""
        return MicroBatcher(lambda rows, _: fn(rows), max_batch, name)

    def __call__(self, rows: np.ndarray, key: Hashable = None) -> Out:
        """``fn(rows, key)``, computed together with whatever else is waiting; re-raises ``fn``'s error."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        future: Future[Out] = Future()
        self._queue.put((rows, key, future))
        return future.result()

    def close(self) -> None:
        """Stop the worker after the queued work is done."""
        self._closed = True
        self._queue.put(None)
        self._worker.join()

    def _run(self) -> None:
        waiting: deque[_Entry[Out]] = deque()  # taken from the queue with another key, for a later batch
        stopping = False
        while True:
            if waiting:
                first = waiting.popleft()
            elif stopping or (entry := self._queue.get()) is None:
                return
            else:
                first = entry
            batch, size = [first], len(first[0])
            later: deque[_Entry[Out]] = deque()
            for entry in waiting:  # earlier arrivals first
                if entry[1] == first[1] and size + len(entry[0]) <= self._max_batch:
                    batch.append(entry)
                    size += len(entry[0])
                else:
                    later.append(entry)
            waiting = later
            while size < self._max_batch and not stopping:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is None:
                    stopping = True  # finish what was submitted, then stop
                elif entry[1] == first[1] and size + len(entry[0]) <= self._max_batch:
                    batch.append(entry)
                    size += len(entry[0])
                else:
                    waiting.append(entry)
            self._execute(batch)

    def _execute(self, batch: list[_Entry[Out]]) -> None:
        try:
            out = self._fn(np.concatenate([rows for rows, _, _ in batch]), batch[0][1])
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of this batch
            for _, _, future in batch:
                future.set_exception(exc)
            return
        start = 0
        for rows, _, future in batch:
            end = start + len(rows)
            rows_of = out[start:end] if isinstance(out, np.ndarray) else tuple(o[start:end] for o in out)  # type: ignore[attr-defined]
            future.set_result(cast(Out, rows_of))
            start = end

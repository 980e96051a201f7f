"""Opportunistic micro-batching: concurrent callers share one batched call of an expensive function.

A single worker thread runs ``fn`` on everything queued at the moment it becomes free, so a lone request
never waits for company (no added latency when idle), while under concurrent load the requests that arrive
during one backbone pass form the next batch. Batched inference is about twice as fast per image as one image
at a time on CPU, which is what lets a 2-core server sustain hundreds of queries per second.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

BatchFn = Callable[[np.ndarray], np.ndarray]


class MicroBatcher:
    """Calls ``fn`` (rows in -> rows out) on the concatenation of concurrent submissions, up to ``max_batch`` rows."""

    def __init__(self, fn: BatchFn, max_batch: int = 32) -> None:
        self._fn = fn
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[np.ndarray, Future[np.ndarray]] | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._run, name="lookalike-batcher", daemon=True)
        self._closed = False
        self._worker.start()

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """``fn(rows)``, computed together with whatever else is waiting; re-raises ``fn``'s error."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        future: Future[np.ndarray] = Future()
        self._queue.put((rows, future))
        return future.result()

    def close(self) -> None:
        """Stop the worker after the queued work is done."""
        self._closed = True
        self._queue.put(None)
        self._worker.join()

    def _run(self) -> None:
        pending: tuple[np.ndarray, Future[np.ndarray]] | None = None
        while True:
            first = pending or self._queue.get()
            pending = None
            if first is None:
                return
            batch = [first]
            size = len(first[0])
            while size < self._max_batch:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                if size + len(entry[0]) > self._max_batch:
                    pending = entry
                    break
                batch.append(entry)
                size += len(entry[0])
            self._execute(batch)

    def _execute(self, batch: list[tuple[np.ndarray, Future[np.ndarray]]]) -> None:
        try:
            out = self._fn(np.concatenate([rows for rows, _ in batch]))
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of this batch
            for _, future in batch:
                future.set_exception(exc)
            return
        start = 0
        for rows, future in batch:
            future.set_result(out[start : start + len(rows)])
            start += len(rows)

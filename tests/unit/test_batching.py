"""MicroBatcher: concurrent callers get their own rows of one shared call, errors reach every caller."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from lookalike.batching import MicroBatcher


class SlowDouble:
    """Doubles its rows, taking a while per call, and records each call's batch size."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        with self.lock:
            self.batch_sizes.append(len(rows))
        time.sleep(0.02)
        return rows * 2


def test_concurrent_callers_share_calls_and_get_their_own_rows() -> None:
    fn = SlowDouble()
    batcher = MicroBatcher.of(fn, max_batch=8)
    inputs = [np.full((1 + i % 2, 3), i, np.float32) for i in range(40)]
    with ThreadPoolExecutor(16) as pool:
        outputs = list(pool.map(batcher, inputs))
    batcher.close()
    for rows, out in zip(inputs, outputs, strict=True):
        np.testing.assert_array_equal(out, rows * 2)
    assert sum(fn.batch_sizes) == sum(len(r) for r in inputs)
    assert max(fn.batch_sizes) <= 8
    assert len(fn.batch_sizes) < len(inputs) / 2  # callers were batched together


def test_a_lone_call_runs_at_once_on_the_callers_own_thread() -> None:
    threads: list[str] = []

    def double(rows: np.ndarray) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return rows * 2

    batcher = MicroBatcher.of(double)
    out = batcher(np.ones((2, 3), np.float32))
    batcher.close()
    assert threads == [threading.current_thread().name]
    np.testing.assert_array_equal(out, np.full((2, 3), 2.0))


def test_runners_bound_how_many_calls_run_at_once() -> None:
    running, most = [0], [0]
    lock = threading.Lock()

    def slow(rows: np.ndarray) -> np.ndarray:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.03)
        with lock:
            running[0] -= 1
        return rows + 1

    for runners in (1, 2):
        most[0] = 0
        batcher = MicroBatcher.of(slow, max_batch=1, runners=runners)
        inputs = [np.full((1, 2), i, np.float32) for i in range(12)]
        with ThreadPoolExecutor(8) as pool:
            outputs = list(pool.map(batcher, inputs))
        for rows, out in zip(inputs, outputs, strict=True):
            np.testing.assert_array_equal(out, rows + 1)
        assert most[0] == runners


def test_an_error_reaches_every_caller_of_the_batch_and_the_batcher_goes_on() -> None:
    def fail_on_negative(rows: np.ndarray) -> np.ndarray:
        time.sleep(0.01)
        if (rows < 0).any():
            raise ValueError("negative input")
        return rows

    batcher = MicroBatcher.of(fail_on_negative)
    with pytest.raises(ValueError, match="negative input"):
        batcher(-np.ones((1, 2), np.float32))
    np.testing.assert_array_equal(batcher(np.ones((1, 2), np.float32)), np.ones((1, 2)))
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher(np.ones((1, 2), np.float32))


def test_only_submissions_with_the_same_key_share_a_call_and_tuples_are_split_by_row() -> None:
    calls: list[tuple[object, int]] = []
    lock = threading.Lock()

    def scaled(rows: np.ndarray, key: object) -> tuple[np.ndarray, np.ndarray]:
        with lock:
            calls.append((key, len(rows)))
        time.sleep(0.01)
        return rows * int(key), np.full(len(rows), int(key))  # type: ignore[call-overload]

    batcher: MicroBatcher[tuple[np.ndarray, np.ndarray]] = MicroBatcher(scaled, max_batch=16)
    jobs = [(np.full((1, 2), i, np.float32), 2 + i % 3) for i in range(60)]
    with ThreadPoolExecutor(20) as pool:
        outputs = list(pool.map(lambda job: batcher(*job), jobs))
    batcher.close()
    for (rows, key), (product, keys) in zip(jobs, outputs, strict=True):
        np.testing.assert_array_equal(product, rows * key)
        assert keys.tolist() == [key]
    assert sum(n for _, n in calls) == len(jobs)
    assert len(calls) < len(jobs) / 2  # batched, and each call had one key (checked by the outputs above)

"""limit_native_threads caps FAISS's OpenMP and NumPy's BLAS pools, in the server's worker threads too."""

from __future__ import annotations

import os
import threading

import faiss
from threadpoolctl import threadpool_info

from lookalike.threads import apply_to_current_thread, limit_native_threads


def _in_new_thread(fn) -> int:  # noqa: ANN001
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(fn()))
    thread.start()
    thread.join()
    return seen[0]


def test_limits_faiss_and_blas_threads_in_every_thread_then_restores() -> None:
    cores = os.cpu_count() or 1
    try:
        limit_native_threads(1)
        assert faiss.omp_get_max_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())

        def limited_worker() -> int:
            apply_to_current_thread()
            return int(faiss.omp_get_max_threads())

        assert _in_new_thread(limited_worker) == 1
    finally:
        limit_native_threads(cores)
    assert faiss.omp_get_max_threads() == cores
    assert _in_new_thread(lambda: (apply_to_current_thread(), faiss.omp_get_max_threads())[1]) == cores

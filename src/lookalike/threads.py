"""Thread pools of the native libraries (FAISS's OpenMP, NumPy's BLAS) for a process that serves queries.

A single query split over busy cores waits for the slowest one (exact search and the head's matrix product ran
several times slower on two threads than on one under load: BENCHMARKS.md). A server gets its parallelism from
concurrent requests instead; ingest and index builds keep every core.
"""

from __future__ import annotations

import faiss
from threadpoolctl import threadpool_limits

_faiss_threads = 0  # 0: FAISS's own default


def limit_native_threads(threads: int) -> None:
    """Use at most ``threads`` threads per FAISS search and per BLAS call, process-wide."""
    global _faiss_threads
    _faiss_threads = threads
    faiss.omp_set_num_threads(threads)
    threadpool_limits(threads)


def apply_to_current_thread() -> None:
    """OpenMP keeps its thread count per calling thread, so a server's worker threads call this before a search
    (BLAS's limit is process-wide already)."""
    if _faiss_threads:
        faiss.omp_set_num_threads(_faiss_threads)

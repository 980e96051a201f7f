"""limit_native_threads caps FAISS's OpenMP and NumPy's BLAS pools."""

from __future__ import annotations

import os

import faiss
from threadpoolctl import threadpool_info

from lookalike.threads import limit_native_threads


def test_limits_faiss_and_blas_threads_then_restores() -> None:
    cores = os.cpu_count() or 1
    try:
        limit_native_threads(1)
        assert faiss.omp_get_max_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    finally:
        limit_native_threads(cores)
    assert faiss.omp_get_max_threads() == cores

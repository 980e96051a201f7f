"""Keep FAISS's NumPy API whole after ``faiss.contrib.torch_utils`` is imported (pytorch-metric-learning does).

That module replaces ``search``, ``range_search`` and ``reconstruct_n`` on every FAISS index class with
torch-aware wrappers that, for NumPy input, call the original without its ``params`` argument (and return torch
tensors from ``reconstruct_n``); it keeps each original as ``<name>_numpy``. Lookalike's own calls go through
:func:`numpy_method`; :func:`repair` wraps the wrappers once so that a library calling FAISS with NumPy (Milvus
Lite runs in this process and does) reaches the original with every argument; torch calls are unchanged.
"""

from __future__ import annotations

import inspect
import sys
import threading
from typing import Any

import numpy as np

METHODS = ("search", "range_search")
_lock = threading.Lock()
_repaired = False


def _passthrough(name: str, replacement: Any) -> Any:
    def method(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(x, np.ndarray):
            return getattr(self, f"{name}_numpy")(x, *args, **kwargs)
        return replacement(self, x, *args, **kwargs)

    method.__name__ = name
    return method


def numpy_method(index: Any, name: str) -> Any:
    """The index's own NumPy method ``name``, whether or not ``faiss.contrib.torch_utils`` replaced it."""
    return getattr(index, f"{name}_numpy", getattr(index, name))


def repair() -> None:
    """Idempotent; does nothing until ``faiss.contrib.torch_utils`` has been imported."""
    global _repaired
    if _repaired or "faiss.contrib.torch_utils" not in sys.modules:
        return
    import faiss

    with _lock:
        if _repaired:
            return
        for _, cls in inspect.getmembers(faiss, inspect.isclass):
            for name in METHODS:
                if f"{name}_numpy" in vars(cls) and name in vars(cls):
                    setattr(cls, name, _passthrough(name, vars(cls)[name]))
        _repaired = True

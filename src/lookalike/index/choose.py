"""Which index fits a catalog (a pure function of its size, dimension and memory budget), and the index tuning
both vector stores share: HNSW's graph degree and search breadth, IVF's probes, the memory each item costs."""

from __future__ import annotations

import math
from dataclasses import dataclass

EXACT_MAX_ITEMS = 20_000  # above this, a graph walk finds the same top 10 faster than exact search (BENCHMARKS.md)
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96
EXACT_FILTER_MIN = 20_000  # a filter matching at most this many items, or EXACT_FILTER_SHARE of the index, is
EXACT_FILTER_SHARE = 0.02  # answered by comparing the query with each of them (BENCHMARKS.md, #20)
FILTER_EF_FACTOR = 2.0  # HNSW's search list under a filter: this many times k over the share it lets through
FILTER_EF_MAX = 4096
IVF_NPROBE = 32
MIN_COMPRESSED_ITEMS = 10_000  # IVF-PQ needs enough vectors to train its coarse and product quantizers
ID_OVERHEAD = 16  # id map entry and bookkeeping, bytes per item


@dataclass(frozen=True)
class IndexChoice:
    """A FAISS index-factory key, its estimated memory, and why it was chosen."""

    key: str
    bytes_per_item: float
    reason: str


def flat_bytes_per_item(dim: int) -> float:
    """Memory per item of an exact index: the float32 vector and its id."""
    return dim * 4 + ID_OVERHEAD


def hnsw_bytes_per_item(dim: int) -> float:
    """Memory per item of an HNSW graph: the vector, about 2M links of 4 bytes (plus 5%), and its id."""
    return flat_bytes_per_item(dim) + HNSW_M * 2 * 4 * 1.05


def choose_index(n_items: int, dim: int, memory_budget_bytes: int) -> IndexChoice:
    """Exact below ``EXACT_MAX_ITEMS``; HNSW above if it fits the budget; IVF-PQ when it does not."""
    flat = flat_bytes_per_item(dim)
    if n_items <= EXACT_MAX_ITEMS and n_items * flat <= memory_budget_bytes:
        return IndexChoice("Flat", flat, f"{n_items} items: exact search is fast enough")
    hnsw = hnsw_bytes_per_item(dim)
    if n_items * hnsw <= memory_budget_bytes:
        return IndexChoice(f"HNSW{HNSW_M}", hnsw, f"{n_items} items: graph search, fits the budget")
    if n_items < MIN_COMPRESSED_ITEMS:
        return IndexChoice("Flat", flat, f"{n_items} items: too few to train a compressed index")
    nlist = max(64, 2 ** round(math.log2(4 * math.sqrt(max(n_items, 1)))))
    divisors = [m for m in (64, 32, 16, 8, 4, 2, 1) if dim % m == 0]
    fitting = [m for m in divisors if n_items * (m + ID_OVERHEAD) <= memory_budget_bytes]
    m = fitting[0] if fitting else divisors[-1]
    return IndexChoice(f"IVF{nlist},PQ{m}", m + ID_OVERHEAD,
                       f"{n_items} items exceed the budget for HNSW: compressed IVF-PQ")

"""Which FAISS index fits a catalog: a pure function of its size, dimension and memory budget."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Exact search reads every stored vector per query: 60,000 of them are 31 MB, about 7 ms per lone query with cold
# caches on the 2-core machine, and the largest cost under concurrent load after the backbone. HNSW32 finds the
# same top 10 (recall@10 0.999 on the demo's 60,000 embeddings) in about 0.3 ms and builds in 3 s (BENCHMARKS.md).
EXACT_MAX_ITEMS = 20_000
HNSW_M = 32
MIN_COMPRESSED_ITEMS = 10_000  # IVF-PQ needs enough vectors to train its coarse and product quantizers
ID_OVERHEAD = 16  # id map entry and bookkeeping, bytes per item


@dataclass(frozen=True)
class IndexChoice:
    """A FAISS index-factory key, its estimated memory, and why it was chosen."""

    key: str
    bytes_per_item: float
    reason: str

    @property
    def needs_training(self) -> bool:
        return self.key.startswith("IVF")


def choose_index(n_items: int, dim: int, memory_budget_bytes: int) -> IndexChoice:
    """Exact below ``EXACT_MAX_ITEMS``; HNSW above if it fits the budget; IVF-PQ when it does not."""
    flat = dim * 4 + ID_OVERHEAD
    if n_items <= EXACT_MAX_ITEMS and n_items * flat <= memory_budget_bytes:
        return IndexChoice("Flat", flat, f"{n_items} items: exact search is fast enough")
    hnsw = dim * 4 + HNSW_M * 2 * 4 * 1.05 + ID_OVERHEAD
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

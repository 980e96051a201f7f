"""glibc's allocator in a long-running server: large blocks always from ``mmap``, so the memory of a replaced index
goes back to the system, and few arenas, so memory one request thread frees is there for the others.

glibc serves a block from ``mmap`` when it is larger than its threshold, but raises the threshold to the size of
every such block freed, up to 32 MB. After the first index reload, a FAISS index's arrays (tens of MB each) then come
from the heap arenas, and a server that reloads the index after every catalog change (another worker's, say)
fragments them: the soak run's resident memory grew by a sixth in eight minutes (BENCHMARKS.md). A fixed threshold
(``mallopt(M_MMAP_THRESHOLD)``, glibc's public tuning call) keeps such blocks in ``mmap``. glibc also gives each
thread that allocates at the same time as another an arena of its own, up to 8 per core; what a request thread frees
in its arena stays there, and a server whose requests move between threads keeps growing (``M_ARENA_MAX``, as the
``MALLOC_ARENA_MAX`` setting many Python servers use).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # malloc.h
M_ARENA_MAX = -8
LARGE_BLOCK = 1 << 20  # blocks from 1 MB on come from mmap and go back to the system when freed
ARENAS = 2


def return_large_blocks(threshold: int = LARGE_BLOCK, arenas: int = ARENAS) -> bool:
    """Serve blocks of ``threshold`` bytes and more from ``mmap``, and the rest from at most ``arenas`` arenas, for
    the rest of the process (glibc on Linux; call it before the threads start); whether it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_ARENA_MAX, arenas))

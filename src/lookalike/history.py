"""Search history: every answered search is stored with its query embedding (so that it can be refined) and,
for a known shopper, joins their taste.

A commit per search cost the server more CPU than its index search (BENCHMARKS.md), so searches are written by a
background thread: :meth:`SearchHistory.record` numbers the search (ids are reserved in blocks, so the number is
final) and returns; the writer stores everything recorded within ``flush_s`` of the oldest in one transaction, and
updates each shopper's taste once for all of their searches in it. A clean stop (:meth:`close`) writes everything
recorded; a crash loses at most the last ``flush_s`` of history. Reads of the history in this process call
:meth:`flush` first; another process sees a search within ``flush_s`` (:meth:`stored_query` waits that long for one
whose id was handed out but is not written yet).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from lookalike.catalog.repository import NewSearch, StoredQuery
from lookalike.search import SearchResult
from lookalike.taste import TasteProfiles

log = logging.getLogger(__name__)

FLUSH_S = 0.25  # the longest a recorded search waits to be written
ID_BLOCK = 256  # search ids reserved at a time
WAIT_POLL_S = 0.02


@dataclass(frozen=True)
class _Pending:
    search: NewSearch
    taste: bool


class SearchHistory:
    """Records answered searches in the catalog database, through a writer thread (see the module docstring)."""

    def __init__(self, tastes: TasteProfiles, flush_s: float = FLUSH_S) -> None:
        self.tastes = tastes
        self.catalog = tastes.catalog
        self.flush_s = flush_s
        self._changed = threading.Condition()
        self._pending: list[_Pending] = []
        self._ids: list[int] = []
        self._writing = 0  # searches taken by the writer and not committed yet
        self._stopping = False
        self._writer = threading.Thread(target=self._run, name="lookalike-history", daemon=True)
        self._writer.start()

    def record(self, label: str, k: int, category: str | None, found: SearchResult, shopper: str | None,
               taste: bool = True) -> int:
        """Number the search and queue it to be stored (and, for ``shopper`` and unless ``taste`` is False, as for
        a search made again with another filter, folded into their taste); returns its id."""
        query = found.query
        with self._changed:
            if self._stopping:
                raise RuntimeError("the search history is closed")
            if not self._ids:
                self._ids = list(reversed(self.catalog.reserve_search_ids(ID_BLOCK)))
            search = NewSearch(self._ids.pop(), label[:200], k, category, found.took_ms,
                               [{"id": h.id, "score": h.score, "category": h.category} for h in found.hits],
                               vector=None if query is None else query.reshape(-1),
                               model_version=self.tastes.service.engine.model_version, shopper=shopper,
                               palette=found.palette)
            self._pending.append(_Pending(search, bool(shopper and taste and query is not None)))
            if len(self._pending) == 1:
                self._changed.notify_all()
        return search.id

    def flush(self) -> None:
        """Return once every search recorded before the call is stored."""
        with self._changed:
            self._changed.notify_all()
            while self._pending or self._writing:
                self._changed.wait(WAIT_POLL_S)

    def stored_query(self, search_id: int) -> StoredQuery | None:
        """The query of a stored search, or None: waits for one this process recorded, and up to twice ``flush_s``
        for one that another process numbered and has not written yet."""
        if any(p.search.id == search_id for p in list(self._pending)):
            self.flush()
        stored = self.catalog.search_vector(search_id)
        if stored is not None or search_id >= self.catalog.search_ids_reserved():
            return stored
        deadline = time.monotonic() + 2 * self.flush_s
        while stored is None and time.monotonic() < deadline:
            time.sleep(WAIT_POLL_S)
            stored = self.catalog.search_vector(search_id)
        return stored

    def close(self) -> None:
        """Store everything recorded, then stop the writer."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._writer.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._stopping:
                    self._changed.wait()
                if not self._pending:
                    return
                due = time.monotonic() + self.flush_s
                while not self._stopping and (wait := due - time.monotonic()) > 0:
                    if self._changed.wait(wait):  # only flush() notifies while searches wait: write now
                        break
                batch, self._pending = self._pending, []
                self._writing = len(batch)
            try:
                self._write(batch)
            except Exception:  # noqa: BLE001 - a failed write must not stop the history; it is logged
                log.exception("could not store %d searches", len(batch))
            with self._changed:
                self._writing = 0
                self._changed.notify_all()

    def _write(self, batch: list[_Pending]) -> None:
        self.catalog.record_searches([p.search for p in batch])
        by_shopper: dict[str, list[NewSearch]] = defaultdict(list)
        for pending in batch:
            if pending.taste and pending.search.shopper:
                by_shopper[pending.search.shopper].append(pending.search)
        for shopper, searches in by_shopper.items():
            self.tastes.record_searches(shopper, np.stack([s.vector for s in searches if s.vector is not None]),
                                        [r["id"] for s in searches for r in s.results])

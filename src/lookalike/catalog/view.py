"""What searches read of the catalog, kept in memory: items by id and products' attributes by SKU.

A search reads the records of a few dozen candidates; from the database that cost more than the index search
(BENCHMARKS.md). The view remembers what it read, and before each search asks the database its version
(``catalog_state.version``, bumped in the transaction of every change of items or products, by any process). When
it moved, the view reads the change log (``catalog.changes``) and forgets the items and products that changed, or
everything when the log cannot say. So every server worker sees every change by the next search, for one small
query (none while nothing changed, on SQLite: ``lookalike.beacon``), and a catalog that changes all the time (a
feed's prices, stock) is still read from memory.

A record read from the database is remembered only if no refresh came in between: one read just before a change
committed, and remembered after the refresh that forgot the item, would stay old.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from lookalike.catalog.records import ItemRecord
from lookalike.catalog.repository import Catalog

MAX_REMEMBERED = 100_000  # items (and as many products) kept; past that the view starts afresh

Key = TypeVar("Key", int, str)
Value = TypeVar("Value")
_UNREAD: Any = object()


class CatalogView:
    """Items and products' attributes of ``catalog`` as of its current version (see the module docstring)."""

    def __init__(self, catalog: Catalog, max_remembered: int = MAX_REMEMBERED) -> None:
        self.catalog = catalog
        self.max_remembered = max_remembered
        self._lock = threading.Lock()  # held only to change what is remembered, never around a query
        self._version: int | None = None
        self._items: dict[int, ItemRecord | None] = {}
        self._products: dict[str, dict[str, Any] | None] = {}

    def refresh(self) -> None:
        """Forget what changed in the catalog since the last refresh (one query; two when it changed)."""
        seen = self._version
        version = self.catalog.version()
        if version == seen:
            return
        changed = None if seen is None else self.catalog.changes_between(seen, version)
        with self._lock:
            if self._version != seen:  # another thread refreshed meanwhile; the next refresh goes on from there
                return
            if changed is None:
                self._items, self._products = {}, {}
            else:
                for item in changed.items:
                    self._items.pop(item, None)
                for sku in changed.skus:
                    self._products.pop(sku, None)
            self._version = version

    def items(self, ids: Iterable[int]) -> dict[int, ItemRecord]:
        """Items by id, absent ids left out (as :meth:`Catalog.get_items`), as of the last :meth:`refresh`."""
        return self._read(list(dict.fromkeys(int(i) for i in ids)), self._items, self.catalog.get_items)

    def product_attributes(self, skus: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Products' attributes by SKU, unknown SKUs left out, as of the last :meth:`refresh`."""
        return self._read(list(dict.fromkeys(skus)), self._products, self.catalog.products.attributes)

    def _read(self, wanted: list[Key], known: dict[Key, Value | None],
              fetch: Callable[[list[Key]], dict[Key, Value]]) -> dict[Key, Value]:
        version = self._version
        values = {key: known.get(key, _UNREAD) for key in wanted}  # one lookup each: a refresh may forget any
        missing = [key for key, value in values.items() if value is _UNREAD]
        if missing:
            found = fetch(missing)
            read = {key: found.get(key) for key in missing}
            values.update(read)
            with self._lock:
                if self._version == version:  # no refresh since it was read: still current
                    if len(known) + len(read) > self.max_remembered:
                        known.clear()
                    known.update(read)
        return {key: value for key, value in values.items() if value is not None}

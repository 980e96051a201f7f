"""What searches read of the catalog, kept in memory: items by id and products' attributes by SKU.

A search reads the records of a few dozen candidates; from the database that cost more than the index search
(BENCHMARKS.md). The view remembers what it read, and before each search asks the database its version
(``catalog_state.version``, bumped in the transaction of every change of items or products, by any process), and
forgets everything when it moved. So every server worker sees every change by the next search, for one small query.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lookalike.catalog.records import ItemRecord
from lookalike.catalog.repository import Catalog

MAX_REMEMBERED = 100_000  # items (and as many products) kept; past that the view starts afresh


class _Snapshot:
    """What was read at one version of the catalog."""

    def __init__(self, version: int | None) -> None:
        self.version = version
        self.items: dict[int, ItemRecord | None] = {}
        self.products: dict[str, dict[str, Any] | None] = {}


class CatalogView:
    """Items and products' attributes of ``catalog`` as of its current version (see the module docstring)."""

    def __init__(self, catalog: Catalog, max_remembered: int = MAX_REMEMBERED) -> None:
        self.catalog = catalog
        self.max_remembered = max_remembered
        self._snapshot = _Snapshot(None)

    def refresh(self) -> None:
        """Forget what was read when the catalog changed since (one query)."""
        version = self.catalog.version()
        if version != self._snapshot.version:
            self._snapshot = _Snapshot(version)  # replaced: a reader in another thread finishes with the old one

    def items(self, ids: Iterable[int]) -> dict[int, ItemRecord]:
        """Items by id, absent ids left out (as :meth:`Catalog.get_items`), as of the last :meth:`refresh`."""
        known = self._snapshot.items
        wanted = list(dict.fromkeys(int(i) for i in ids))
        missing = [i for i in wanted if i not in known]
        if missing:
            found = self.catalog.get_items(missing)
            self._remember(known, {i: found.get(i) for i in missing})
        return {i: record for i in wanted if (record := known.get(i)) is not None}

    def product_attributes(self, skus: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Products' attributes by SKU, unknown SKUs left out, as of the last :meth:`refresh`."""
        known = self._snapshot.products
        wanted = list(dict.fromkeys(skus))
        missing = [sku for sku in wanted if sku not in known]
        if missing:
            found = self.catalog.products.attributes(missing)
            self._remember(known, {sku: found.get(sku) for sku in missing})
        return {sku: attributes for sku in wanted if (attributes := known.get(sku)) is not None}

    def _remember(self, known: dict[Any, Any], new: dict[Any, Any]) -> None:
        if len(known) + len(new) > self.max_remembered:
            known.clear()
        known.update(new)

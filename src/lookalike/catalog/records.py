"""Catalog items as the rest of the code sees them: plain values, not database rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lookalike.catalog.models import Item


@dataclass(frozen=True)
class NewItem:
    """An item about to be added (its id comes from the database)."""

    path: str
    content_hash: str
    category: str | None = None
    item_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sku: str | None = None
    image_url: str | None = None


@dataclass(frozen=True)
class ItemRecord:
    """A catalog item as the rest of the code sees it."""

    id: int
    path: str
    content_hash: str
    category: str | None
    item_id: str | None
    metadata: dict[str, Any]
    model_version: str
    sku: str | None = None  # the product it shows, for items synced from a feed
    image_url: str | None = None

    @classmethod
    def of(cls, row: Item) -> ItemRecord:
        return cls(row.id, row.path, row.content_hash, row.category, row.item_id, dict(row.extra or {}),
                   row.model_version, row.sku, row.image_url)

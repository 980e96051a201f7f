"""Products keyed by SKU, each shown by one or more catalog items (its images), and the downloaded images'
records by URL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from lookalike.catalog.attributes import forget_attributes, write_attributes
from lookalike.catalog.changes import bump
from lookalike.catalog.models import Download, Item, Product, utcnow
from lookalike.catalog.records import ItemRecord, NewItem

CHUNK = 500  # values per IN (...) clause


def chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    """The values, sorted and deduplicated, CHUNK at a time (for IN clauses)."""
    ordered = sorted(set(values))
    return (ordered[start : start + CHUNK] for start in range(0, len(ordered), CHUNK))


@dataclass(frozen=True)
class ProductRecord:
    """A product, its attributes and the items that show it, in image order."""

    sku: str
    category: str | None
    attributes: dict[str, Any]
    image_urls: list[str]
    items: list[ItemRecord]
    updated_at: datetime | None = None


@dataclass
class ProductChange:
    """What to write for one product: its attributes always; ``items`` (new images, in order) replacing
    ``replaced`` (the ids of the items it showed) when its images changed, else None."""

    sku: str
    category: str | None
    attributes: dict[str, Any]
    image_urls: list[str]
    items: list[NewItem] | None = None
    replaced: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class DownloadRecord:
    url: str
    content_hash: str
    path: str
    etag: str | None = None
    last_modified: str | None = None


class ProductRepository:
    """Reads and writes of products (and, in the same transactions, their items)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, skus: Iterable[str]) -> dict[str, ProductRecord]:
        """Products by SKU with their items (absent SKUs are left out)."""
        found: dict[str, ProductRecord] = {}
        with self._sessions() as session:
            for chunk in chunks(skus):
                items: dict[str, list[ItemRecord]] = {}
                for row in session.scalars(select(Item).where(Item.sku.in_(chunk)).order_by(Item.id)):
                    items.setdefault(row.sku or "", []).append(ItemRecord.of(row))
                for product in session.scalars(select(Product).where(Product.sku.in_(chunk))):
                    shown = sorted(items.get(product.sku, []), key=lambda r: _position(r, product.image_urls))
                    found[product.sku] = ProductRecord(product.sku, product.category, dict(product.attributes or {}),
                                                       list(product.image_urls or []), shown, product.updated_at)
        return found

    def attributes(self, skus: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Attributes by SKU (for search results: no items loaded)."""
        out: dict[str, dict[str, Any]] = {}
        with self._sessions() as session:
            for chunk in chunks(skus):
                rows = session.execute(select(Product.sku, Product.attributes).where(Product.sku.in_(chunk)))
                out.update({sku: dict(attributes or {}) for sku, attributes in rows})
        return out

    def skus(self) -> list[str]:
        with self._sessions() as session:
            return list(session.scalars(select(Product.sku).order_by(Product.sku)))

    def count(self) -> int:
        with self._sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Product)) or 0)

    def apply(self, changes: Sequence[ProductChange], model_version: str) -> dict[str, list[int]]:
        """Write the changes in one transaction; returns the ids of the new items by SKU."""
        with self._sessions() as session, session.begin(), session.no_autoflush:
            replaced = [i for c in changes for i in c.replaced]
            for chunk in chunks(replaced):
                session.execute(delete(Item).where(Item.id.in_(chunk)))
            forget_attributes(session, replaced)
            existing = {p.sku: p for chunk in chunks(c.sku for c in changes)
                        for p in session.scalars(select(Product).where(Product.sku.in_(chunk)))}
            rows: dict[str, list[Item]] = {}
            for change in changes:
                product = existing.get(change.sku) or Product(sku=change.sku)
                product.category, product.attributes = change.category, change.attributes
                product.image_urls, product.updated_at = change.image_urls, utcnow()
                session.add(product)
                if change.items is not None:
                    rows[change.sku] = [Item(path=i.path, content_hash=i.content_hash, category=i.category,
                                             item_id=i.item_id, extra=i.metadata, model_version=model_version,
                                             sku=change.sku, image_url=i.image_url) for i in change.items]
                    session.add_all(rows[change.sku])
            session.flush()
            attributes = {row.id: (row.category, {**dict(row.extra or {}), **change.attributes})
                          for change in changes for row in rows.get(change.sku, [])}
            updated = {c.sku: c for c in changes if c.items is None}
            for chunk in chunks(updated):  # attributes alone changed: the same items, new values
                for row in session.scalars(select(Item).where(Item.sku.in_(chunk))):
                    attributes[row.id] = (row.category, {**dict(row.extra or {}), **updated[row.sku or ""].attributes})
            write_attributes(session, attributes)
            bump(session, (), [c.sku for c in changes])
            return {sku: [row.id for row in added] for sku, added in rows.items()}

    def item_ids(self, skus: Iterable[str]) -> list[int]:
        with self._sessions() as session:
            return [i for chunk in chunks(skus) for i in session.scalars(select(Item.id).where(Item.sku.in_(chunk)))]

    def delete(self, skus: Iterable[str]) -> int:
        """Delete products and their items in one transaction; returns how many products went."""
        removed = 0
        with self._sessions() as session, session.begin():
            for chunk in chunks(skus):
                forget_attributes(session, session.scalars(select(Item.id).where(Item.sku.in_(chunk))).all())
                session.execute(delete(Item).where(Item.sku.in_(chunk)))
                result = session.execute(delete(Product).where(Product.sku.in_(chunk)))
                removed += int(getattr(result, "rowcount", 0) or 0)
                bump(session, (), chunk)
        return removed


class DownloadRepository:
    """Where each downloaded image URL's bytes are, with its HTTP validators."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, urls: Iterable[str]) -> dict[str, DownloadRecord]:
        out: dict[str, DownloadRecord] = {}
        with self._sessions() as session:
            for chunk in chunks(urls):
                for row in session.scalars(select(Download).where(Download.url.in_(chunk))):
                    out[row.url] = DownloadRecord(row.url, row.content_hash, row.path, row.etag, row.last_modified)
        return out

    def save(self, records: Iterable[DownloadRecord]) -> None:
        wanted = {r.url: r for r in records}
        with self._sessions() as session, session.begin(), session.no_autoflush:
            rows = {row.url: row for chunk in chunks(wanted)
                    for row in session.scalars(select(Download).where(Download.url.in_(chunk)))}
            for url, record in wanted.items():
                row = rows.get(url) or Download(url=url)
                row.content_hash, row.path = record.content_hash, record.path
                row.etag, row.last_modified, row.fetched_at = record.etag, record.last_modified, utcnow()
                session.add(row)


def _position(record: ItemRecord, urls: list[str]) -> int:
    return urls.index(record.image_url) if record.image_url in urls else len(urls)

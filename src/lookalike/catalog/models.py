"""SQLAlchemy tables of the catalog database: items and the products they show, search history, shoppers' tastes,
downloaded images and background jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Item(Base):
    """One catalog image. ``id`` is also its id in the vector index; ids are never reused."""

    __tablename__ = "items"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    content_hash: Mapped[str] = mapped_column(String(40), index=True)
    category: Mapped[str | None] = mapped_column(String(200), index=True)
    item_id: Mapped[str | None] = mapped_column(String(200), index=True)
    extra: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    model_version: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sku: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)  # the product it shows
    image_url: Mapped[str | None] = mapped_column(Text, nullable=True)  # where the product's image came from


class ItemAttribute(Base):
    """One typed attribute value of an item (its category, its manifest columns, its product's attributes), one row
    per value (a list gives several): what filters and facets are answered from (``catalog.attributes``)."""

    __tablename__ = "item_attributes"
    __table_args__ = (Index("ix_item_attributes_name_text", "name", "text"),
                      Index("ix_item_attributes_name_num", "name", "num"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # "text", "number", "bool" or "date"
    num: Mapped[float | None] = mapped_column(Float, nullable=True)  # numbers, 0/1, dates as POSIX seconds
    text: Mapped[str | None] = mapped_column(String(200), nullable=True)


class CatalogState(Base):
    """One row: a version that every change of items or their attributes increments, so every process can tell
    when what it derived from them (the attribute index of filters) is stale."""

    __tablename__ = "catalog_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class CatalogChange(Base):
    """What one catalog version changed: the ids of the items and the SKUs of the products whose rows moved (JSON
    lists); null items: anything may have changed. The latest ``catalog.changes.KEPT`` are kept, so that a process
    holding what it read of the catalog forgets only what changed (``catalog.view``)."""

    __tablename__ = "catalog_changes"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    items: Mapped[str | None] = mapped_column(Text, nullable=True)
    skus: Mapped[str] = mapped_column(Text, default="[]")


class Product(Base):
    """A merchant's product, keyed by SKU: its attributes, and the image URLs its items show (as applied: an image
    that failed to download is left out, so the next sync tries it again)."""

    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(String(200), primary_key=True)
    category: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    image_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Download(Base):
    """A downloaded image by URL: where its bytes are kept (by content) and the validators for asking again."""

    __tablename__ = "downloads"

    url: Mapped[str] = mapped_column(Text, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(40))
    path: Mapped[str] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_modified: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Job(Base):
    """A background job (a feed sync started through the API), readable by every server worker."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # "queued", "running", "done" or "failed"
    detail: Mapped[str] = mapped_column(Text, default="")
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ImageSignature(Base):
    """The perceptual signature of an image's content (see ``lookalike.signatures``), computed when duplicates are
    first looked for; keyed by content hash, so an image is hashed once whatever item shows it."""

    __tablename__ = "image_signatures"

    content_hash: Mapped[str] = mapped_column(String(40), primary_key=True)
    phash: Mapped[str] = mapped_column(String(16))  # hexadecimal
    colour: Mapped[bytes] = mapped_column(LargeBinary)
    palette: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # None in rows stored before it
    grey: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # None in rows stored before it


class Search(Base):
    """One search made through the service, with its top results."""

    __tablename__ = "searches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    query: Mapped[str] = mapped_column(Text)
    k: Mapped[int] = mapped_column(Integer)
    category: Mapped[str | None] = mapped_column(String(200))
    took_ms: Mapped[float] = mapped_column(Float)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class IdBlock(Base):
    """The next id of a kind not handed out yet: a process reserves ids in blocks, so it numbers its searches itself
    and writes them later, several in one transaction."""

    __tablename__ = "id_blocks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_id: Mapped[int] = mapped_column(Integer)


class SearchVector(Base):
    """The query embedding of a search, so it can be refined later without the upload (float32 bytes)."""

    __tablename__ = "search_vectors"

    search_id: Mapped[int] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(200))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    palette: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # the query's colours, when known


class SearchShopper(Base):
    """Which shopper made a search, so each shopper sees only their own history (a table of its own, so existing
    databases gain it through ``create_all``)."""

    __tablename__ = "search_shoppers"

    search_id: Mapped[int] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"), primary_key=True)
    shopper_id: Mapped[str] = mapped_column(String(64), index=True)


class ShopperProfile(Base):
    """A shopper's taste: the weighted sum of their query and liked-item embeddings (float32 bytes)."""

    __tablename__ = "shopper_profiles"

    shopper_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(200))
    taste: Mapped[bytes] = mapped_column(LargeBinary)
    searches: Mapped[int] = mapped_column(Integer, default=0)
    likes: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ShopperItem(Base):
    """An item a shopper was shown, liked or disliked (recommendations leave out the shown and liked ones)."""

    __tablename__ = "shopper_items"
    __table_args__ = (UniqueConstraint("shopper_id", "item", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shopper_id: Mapped[str] = mapped_column(String(64), index=True)
    item: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # "seen", "liked" or "disliked"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

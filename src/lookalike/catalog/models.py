"""SQLAlchemy tables of the catalog database: items and search history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text
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

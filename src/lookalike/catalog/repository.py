"""Reads and writes of the catalog database; the one place SQL is spoken."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from lookalike.catalog.models import Base, Item, Search


@dataclass(frozen=True)
class NewItem:
    """An item about to be added (its id comes from the database)."""

    path: str
    content_hash: str
    category: str | None = None
    item_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


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

    @classmethod
    def of(cls, row: Item) -> ItemRecord:
        return cls(row.id, row.path, row.content_hash, row.category, row.item_id, dict(row.extra or {}),
                   row.model_version)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Catalog:
    """The metadata database: any SQLAlchemy URL, SQLite by default."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._sessions()

    def close(self) -> None:
        self.engine.dispose()

    # --- items --------------------------------------------------------------------------------

    def add_items(self, items: Sequence[NewItem], model_version: str) -> list[int]:
        """Insert items in one transaction; returns their new ids in order."""
        rows = [
            Item(path=i.path, content_hash=i.content_hash, category=i.category, item_id=i.item_id,
                 extra=i.metadata, model_version=model_version)
            for i in items
        ]
        with self.session() as session, session.begin():
            session.add_all(rows)
            session.flush()
            return [row.id for row in rows]

    def known_paths(self, paths: Iterable[str]) -> set[str]:
        """Those of ``paths`` already in the catalog."""
        wanted = list(paths)
        found: set[str] = set()
        with self.session() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                found.update(session.scalars(select(Item.path).where(Item.path.in_(chunk))))
        return found

    def get_items(self, ids: Iterable[int]) -> dict[int, ItemRecord]:
        wanted = [int(i) for i in ids]
        with self.session() as session:
            rows = session.scalars(select(Item).where(Item.id.in_(wanted))).all() if wanted else []
            return {row.id: ItemRecord.of(row) for row in rows}

    def get_items_by_paths(self, paths: Iterable[str]) -> list[ItemRecord]:
        wanted = list(paths)
        with self.session() as session:
            rows = session.scalars(select(Item).where(Item.path.in_(wanted)).order_by(Item.id)).all() if wanted else []
            return [ItemRecord.of(row) for row in rows]

    def count_searches(self) -> int:
        with self.session() as session:
            return int(session.scalar(select(func.count(Search.id))) or 0)

    def get_item(self, item_id: int) -> ItemRecord | None:
        with self.session() as session:
            row = session.get(Item, item_id)
            return ItemRecord.of(row) if row else None

    def iter_items(self, batch: int = 5000) -> Iterable[ItemRecord]:
        """Every item in id order, fetched in batches."""
        last = 0
        while True:
            with self.session() as session:
                rows = session.scalars(select(Item).where(Item.id > last).order_by(Item.id).limit(batch)).all()
            if not rows:
                return
            yield from (ItemRecord.of(r) for r in rows)
            last = rows[-1].id

    def ids(self) -> list[int]:
        with self.session() as session:
            return list(session.scalars(select(Item.id).order_by(Item.id)))

    def delete_items(self, ids: Iterable[int]) -> int:
        wanted = [int(i) for i in ids]
        with self.session() as session, session.begin():
            result = session.execute(delete(Item).where(Item.id.in_(wanted)))
            return int(getattr(result, "rowcount", 0) or 0)

    def set_model_version(self, ids: Sequence[int], model_version: str) -> None:
        with self.session() as session, session.begin():
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                session.query(Item).filter(Item.id.in_(chunk)).update(
                    {Item.model_version: model_version}, synchronize_session=False
                )

    def count(self) -> int:
        with self.session() as session:
            return int(session.scalar(select(func.count(Item.id))) or 0)

    def category_counts(self) -> dict[str | None, int]:
        with self.session() as session:
            rows = session.execute(select(Item.category, func.count(Item.id)).group_by(Item.category)).all()
            return {category: int(n) for category, n in rows}

    # --- search history -----------------------------------------------------------------------

    def record_search(self, query: str, k: int, category: str | None, took_ms: float,
                      results: list[dict[str, Any]]) -> int:
        with self.session() as session, session.begin():
            row = Search(query=query, k=k, category=category, took_ms=took_ms, results=results)
            session.add(row)
            session.flush()
            return row.id

    def recent_searches(self, limit: int = 20) -> list[Search]:
        with self.session() as session:
            return list(session.scalars(select(Search).order_by(Search.id.desc()).limit(limit)))

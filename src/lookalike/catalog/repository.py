"""Reads and writes of the catalog database; the one place SQL is spoken."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import (
    Engine,
    LargeBinary,
    String,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeEngine

from lookalike.beacon import Beacon
from lookalike.catalog.attributes import AttributeRepository, add_attributes, forget_attributes, write_attributes
from lookalike.catalog.changes import Changed, VersionReader, bump, changes_between, signal_commits
from lookalike.catalog.jobs import JobRepository
from lookalike.catalog.models import (
    Base,
    IdBlock,
    ImageSignature,
    Item,
    Search,
    SearchShopper,
    SearchVector,
    ShopperItem,
    ShopperProfile,
    utcnow,
)
from lookalike.catalog.products import DownloadRepository, ProductRepository
from lookalike.catalog.records import ItemRecord, NewItem

__all__ = ["Catalog", "ItemRecord", "NewItem", "NewSearch", "ShopperTaste", "StoredSignature"]


_RECORD_COLUMNS = (Item.id, Item.path, Item.content_hash, Item.category, Item.item_id, Item.extra, Item.model_version,
                   Item.sku, Item.image_url)
# Statements of the per-search path, built once: SQLAlchemy then reuses their compiled form with new parameters.
_ITEMS_BY_ID = select(*_RECORD_COLUMNS).where(Item.id.in_(bindparam("ids", expanding=True)))
_SEARCHES = "searches"
# RETURNING the unique path with the id, to pair them: asking SQLAlchemy to keep the rows' order
# (sort_by_parameter_order) makes it insert one row per statement on SQLite
_INSERT_ITEMS = insert(Item.__table__).returning(Item.__table__.c.path, Item.__table__.c.id)  # type: ignore[arg-type]
_SIGNATURES = select(ImageSignature.content_hash, ImageSignature.phash, ImageSignature.colour, ImageSignature.palette,
                     ImageSignature.grey).where(ImageSignature.content_hash.in_(bindparam("hashes", expanding=True)),
                                                ImageSignature.palette.is_not(None), ImageSignature.grey.is_not(None))
_INSERT_SEARCH = insert(Search.__table__)  # type: ignore[arg-type]
_INSERT_SEARCH_VECTOR = insert(SearchVector.__table__)  # type: ignore[arg-type]
_INSERT_SEARCH_SHOPPER = insert(SearchShopper.__table__)  # type: ignore[arg-type]


class StoredQuery(NamedTuple):
    model_version: str
    vector: np.ndarray
    palette: np.ndarray | None


class StoredSignature(NamedTuple):
    """An image signature as stored (see ``lookalike.signatures``)."""

    phash: str  # hexadecimal
    colour: bytes
    palette: bytes
    grey: bytes


# Columns added to a table after its first release: (table, column, type). ``create_all`` makes new tables only.
_LATER_COLUMNS: list[tuple[str, str, TypeEngine[Any]]] = [
    ("image_signatures", "palette", LargeBinary()), ("image_signatures", "grey", LargeBinary()),
    ("items", "sku", String(200)), ("items", "image_url", Text()), ("search_vectors", "palette", LargeBinary())]


def _add_missing_columns(engine: Engine) -> None:
    """Add the later columns an existing database lacks (as NULL), and their indexes."""
    inspector = inspect(engine)
    for table, column, kind in _LATER_COLUMNS:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            with engine.begin() as connection:
                connection.exec_driver_sql(
                    f"ALTER TABLE {table} ADD COLUMN {column} {kind.compile(dialect=engine.dialect)}")
            for index in Base.metadata.tables[table].indexes:
                if column in index.columns:
                    index.create(engine, checkfirst=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_beacon(engine: Engine) -> Beacon | None:
    """The change beacon beside a SQLite database file (``catalog.db.changes``), whose writers are all processes on
    this machine; None for other databases (a server on another machine may change them: every search asks)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Beacon(Path(database).expanduser().with_name(Path(database).name + ".changes"))


class Catalog:
    """The metadata database: any SQLAlchemy URL, SQLite by default."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        indexed = inspect(self.engine).has_table("item_attributes")
        Base.metadata.create_all(self.engine)
        _add_missing_columns(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._beacon = _sqlite_beacon(self.engine)
        if self._beacon is not None:
            signal_commits(self._sessions, self._beacon)
        self._version = VersionReader(self.engine, self._beacon)
        self.attributes = AttributeRepository(self._sessions, self._version)
        if not indexed:
            self.attributes.fill()  # a database made before attributes were indexed (or a new one: nothing to do)
        self.products = ProductRepository(self._sessions)
        self.downloads = DownloadRepository(self._sessions)
        self.jobs = JobRepository(self._sessions)

    def session(self) -> Session:
        return self._sessions()

    def version(self) -> int:
        """The catalog's version: it moves with every change of items or products, by any process."""
        return self._version()

    def changes_between(self, seen: int, current: int) -> Changed | None:
        """The items and products changed after version ``seen`` up to ``current``; None: not known one by one."""
        with self.engine.connect() as connection:
            return changes_between(connection, seen, current)

    def close(self) -> None:
        self._version.close()
        if self._beacon is not None:
            self._beacon.close()
        self.engine.dispose()

    # --- items --------------------------------------------------------------------------------

    def add_items(self, items: Sequence[NewItem], model_version: str, replace: Sequence[int] = ()) -> list[int]:
        """Insert items, deleting the ``replace`` ids first (the same paths, say), in one transaction; returns the
        new ids in order."""
        if not items:
            return []
        now = utcnow()
        rows = [{"path": i.path, "content_hash": i.content_hash, "category": i.category, "item_id": i.item_id,
                 "metadata": i.metadata, "model_version": model_version, "added_at": now, "sku": i.sku,
                 "image_url": i.image_url} for i in items]
        with self.session() as session, session.begin():  # Core rows, not ORM objects: ingest adds thousands
            if replace:
                session.execute(delete(Item).where(Item.id.in_([int(i) for i in replace])))
                forget_attributes(session, replace)
            by_path: dict[str, int] = {path: item for path, item in session.execute(_INSERT_ITEMS, rows)}
            ids = [int(by_path[i.path]) for i in items]
            add_attributes(session, {item: (new.category, dict(new.metadata or {}))
                                     for item, new in zip(ids, items, strict=True)})
            return ids

    def update_attributes(self, changes: Sequence[tuple[int, str | None, dict[str, Any]]]) -> None:
        """Set ``(id, item_id, metadata)`` of existing items, in one transaction."""
        with self.session() as session, session.begin():
            written = {}
            for item, item_id, metadata in changes:
                row = session.get(Item, item)
                if row is not None:
                    row.item_id, row.extra = item_id, metadata
                    written[row.id] = (row.category, dict(metadata))
            write_attributes(session, written)

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
        """Items by id (absent ids are left out). Core rows, not ORM objects: this runs for every search."""
        wanted = [int(i) for i in ids]
        if not wanted:
            return {}
        with self.engine.connect() as connection:
            rows = connection.execute(_ITEMS_BY_ID, {"ids": wanted}).all()
        return {row[0]: ItemRecord(row[0], row[1], row[2], row[3], row[4], dict(row[5] or {}), row[6], row[7], row[8])
                for row in rows}

    def get_items_by_paths(self, paths: Iterable[str]) -> list[ItemRecord]:
        wanted = list(paths)
        with self.session() as session:
            rows = session.scalars(select(Item).where(Item.path.in_(wanted)).order_by(Item.id)).all() if wanted else []
            return [ItemRecord.of(row) for row in rows]

    def image_signatures(self, content_hashes: Iterable[str]) -> dict[str, StoredSignature]:
        """Stored signatures of these image contents; absent ones, and ones stored before palettes or grey thumbnails
        were, are left out."""
        wanted = sorted(set(content_hashes))
        found: dict[str, StoredSignature] = {}
        with self.engine.connect() as connection:  # Core: searches ask for their candidates' palettes
            for start in range(0, len(wanted), 500):
                rows = connection.execute(_SIGNATURES, {"hashes": wanted[start : start + 500]})
                found.update({row[0]: StoredSignature(row[1], row[2], row[3] or b"", row[4] or b"") for row in rows})
        return found

    def save_image_signatures(self, signatures: dict[str, StoredSignature]) -> None:
        """Store signatures of image contents not stored yet, replacing incomplete ones (another writer's complete
        ones are kept)."""
        complete = self.image_signatures(signatures)
        new = {k: v for k, v in signatures.items() if k not in complete}
        if not new:
            return
        with self.session() as session, session.begin():
            session.execute(delete(ImageSignature).where(ImageSignature.content_hash.in_(list(new))))
            session.execute(insert(ImageSignature), [{"content_hash": k, "phash": s.phash, "colour": s.colour,
                                                      "palette": s.palette, "grey": s.grey} for k, s in new.items()])

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
            forget_attributes(session, wanted)
            return int(getattr(result, "rowcount", 0) or 0)

    def set_model_version(self, ids: Sequence[int], model_version: str) -> None:
        with self.session() as session, session.begin():
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                session.query(Item).filter(Item.id.in_(chunk)).update(
                    {Item.model_version: model_version}, synchronize_session=False
                )
            bump(session, ids)

    def count(self) -> int:
        with self.session() as session:
            return int(session.scalar(select(func.count(Item.id))) or 0)

    def category_counts(self) -> dict[str | None, int]:
        with self.session() as session:
            rows = session.execute(select(Item.category, func.count(Item.id)).group_by(Item.category)).all()
            return {category: int(n) for category, n in rows}

    # --- search history -----------------------------------------------------------------------

    def record_search(self, query: str, k: int, category: str | None, took_ms: float,
                      results: list[dict[str, Any]], vector: np.ndarray | None = None,
                      model_version: str | None = None, shopper: str | None = None,
                      palette: np.ndarray | None = None) -> int:
        """Store one search at once (see :meth:`record_searches`); returns its id."""
        search_id = self.reserve_search_ids(1)[0]
        self.record_searches([NewSearch(search_id, query, k, category, took_ms, results, vector, model_version,
                                        shopper, palette)])
        return search_id

    def reserve_search_ids(self, count: int) -> range:
        """``count`` search ids no other caller, in any process, gets."""
        for _ in range(10):
            with self.session() as session, session.begin():
                moved = session.execute(update(IdBlock).where(IdBlock.name == _SEARCHES)
                                        .values(next_id=IdBlock.next_id + count))
                if getattr(moved, "rowcount", 0):  # this transaction now holds the row
                    start = int(session.scalar(select(IdBlock.next_id).where(IdBlock.name == _SEARCHES)) or 0) - count
                    stored = session.scalar(select(func.max(Search.id)))
                    if stored is not None and stored >= start:  # written by other means (an older version, say)
                        start = int(stored) + 1
                        session.execute(update(IdBlock).where(IdBlock.name == _SEARCHES)
                                        .values(next_id=start + count))
                    return range(start, start + count)
            try:
                with self.session() as session, session.begin():  # the first reservation: after every stored search
                    first = int(session.scalar(select(func.max(Search.id))) or 0) + 1
                    session.add(IdBlock(name=_SEARCHES, next_id=first + count))
                return range(first, first + count)
            except IntegrityError:  # another process made the row meanwhile: reserve from it
                continue
        raise RuntimeError("could not reserve search ids")

    def search_ids_reserved(self) -> int:
        """The first search id not handed out yet: an absent search below it may still be on its way."""
        with self.engine.connect() as connection:
            return int(connection.execute(select(IdBlock.next_id).where(IdBlock.name == _SEARCHES)).scalar() or 1)

    def record_searches(self, searches: Sequence[NewSearch]) -> None:
        """Store searches numbered by :meth:`reserve_search_ids` (their query embeddings and colours, when given, to
        refine or re-run them later, and the shoppers who made them), in one transaction."""
        if not searches:
            return
        with self.engine.begin() as connection:  # Core, not the ORM: this runs for every search
            connection.execute(_INSERT_SEARCH, [
                {"id": s.id, "query": s.query, "k": s.k, "category": s.category, "took_ms": s.took_ms,
                 "results": s.results, "created_at": s.created_at} for s in searches])
            vectors = [{"search_id": s.id, "model_version": s.model_version, "vector": _to_bytes(s.vector),
                        "palette": None if s.palette is None else _to_bytes(s.palette)}
                       for s in searches if s.vector is not None and s.model_version is not None]
            if vectors:
                connection.execute(_INSERT_SEARCH_VECTOR, vectors)
            shoppers = [{"search_id": s.id, "shopper_id": s.shopper} for s in searches if s.shopper is not None]
            if shoppers:
                connection.execute(_INSERT_SEARCH_SHOPPER, shoppers)

    def search_vector(self, search_id: int) -> StoredQuery | None:
        """The query of a stored search (its model version, embedding and colours), or None."""
        with self.session() as session:
            row = session.get(SearchVector, search_id)
            if row is None:
                return None
            return StoredQuery(row.model_version, _from_bytes(row.vector),
                               _from_bytes(row.palette) if row.palette else None)

    def recent_searches(self, limit: int = 20, shopper: str | None = None) -> list[Search]:
        """The latest searches, newest first: the shopper's own, or everyone's when ``shopper`` is None."""
        query = select(Search)
        if shopper is not None:
            query = query.join(SearchShopper, SearchShopper.search_id == Search.id).where(
                SearchShopper.shopper_id == shopper)
        with self.session() as session:
            return list(session.scalars(query.order_by(Search.id.desc()).limit(limit)))

    # --- shoppers -----------------------------------------------------------------------------

    def shopper_profile(self, shopper: str) -> ShopperTaste | None:
        with self.session() as session:
            row = session.get(ShopperProfile, shopper)
            return ShopperTaste(row.model_version, _from_bytes(row.taste), row.searches, row.likes) if row else None

    def save_shopper_profile(self, shopper: str, taste: ShopperTaste) -> None:
        with self.session() as session, session.begin():
            row = session.get(ShopperProfile, shopper) or ShopperProfile(shopper_id=shopper)
            row.model_version, row.taste = taste.model_version, _to_bytes(taste.vector)
            row.searches, row.likes = taste.searches, taste.likes
            session.add(row)

    def add_shopper_items(self, shopper: str, items: Iterable[int], kind: str) -> None:
        """Remember items a shopper saw, liked or disliked (each once per kind)."""
        wanted = {int(i) for i in items}
        with self.session() as session, session.begin():
            known = set(session.scalars(select(ShopperItem.item).where(
                ShopperItem.shopper_id == shopper, ShopperItem.kind == kind, ShopperItem.item.in_(sorted(wanted)))))
            session.add_all(ShopperItem(shopper_id=shopper, item=i, kind=kind) for i in sorted(wanted - known))

    def shopper_items(self, shopper: str, kinds: Sequence[str], limit: int | None = None) -> set[int]:
        """Items of these kinds for the shopper, the most recent ``limit`` of them, and every other image of the
        products those items show (a product seen from the front was seen)."""
        with self.session() as session:
            query = select(ShopperItem.item).where(ShopperItem.shopper_id == shopper,
                                                   ShopperItem.kind.in_(list(kinds))).order_by(ShopperItem.id.desc())
            recent = (query.limit(limit) if limit else query).subquery()
            products = select(Item.sku).where(Item.id.in_(select(recent.c.item)), Item.sku.is_not(None))
            siblings = select(Item.id).where(Item.sku.in_(products))
            return set(session.scalars(select(recent.c.item))) | set(session.scalars(siblings))


@dataclass(frozen=True)
class NewSearch:
    """A search to store, numbered beforehand (:meth:`Catalog.reserve_search_ids`)."""

    id: int
    query: str
    k: int
    category: str | None
    took_ms: float
    results: list[dict[str, Any]]
    vector: np.ndarray | None = None
    model_version: str | None = None
    shopper: str | None = None
    palette: np.ndarray | None = None
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class ShopperTaste:
    """A shopper's taste vector (an unnormalized weighted sum) and what it was built from."""

    model_version: str
    vector: np.ndarray
    searches: int = 0
    likes: int = 0


def _to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, np.float32).tobytes()


def _from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.float32).copy()

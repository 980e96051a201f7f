"""The catalog's version and its change log: every change of items or products increments the version, in the
change's own transaction, and records which items and products it touched, so that a process holding what it
read of the catalog (``catalog.view``) forgets only those instead of everything."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from lookalike.beacon import Beacon, Watched
from lookalike.catalog.models import CatalogChange, CatalogState

KEPT = 10_000  # change rows kept; a process further behind than that forgets everything it read
_LOGGED = "lookalike.catalog_change"  # session.info: (transaction, its CatalogChange row)
_TRIM_EVERY = 500
_CHANGES = (select(CatalogChange.version, CatalogChange.items, CatalogChange.skus)
            .where(CatalogChange.version > bindparam("seen"), CatalogChange.version <= bindparam("current"))
            .order_by(CatalogChange.version))


def bump(session: Session, items: Iterable[int] | None, skus: Iterable[str] = ()) -> None:
    """Log that these items (None: any item) and these products changed in the caller's transaction: its first
    change increments the catalog's version (creating its row the first time), later ones join that version's log
    row, so one transaction is one version however many steps it takes."""
    transaction = session.get_transaction()
    logged = session.info.get(_LOGGED)
    if logged is not None and logged[0] is transaction:
        change = logged[1]
        if change.items is not None:
            change.items = None if items is None else _listed(json.loads(change.items), map(int, items))
        change.skus = _listed(json.loads(change.skus), skus)
        return
    version = session.execute(update(CatalogState).where(CatalogState.id == 1)
                              .values(version=CatalogState.version + 1).returning(CatalogState.version)).scalar()
    if version is None:
        session.add(CatalogState(id=1, version=1))
        version = 1
    change = CatalogChange(version=version, items=None if items is None else _listed([], map(int, items)),
                           skus=_listed([], skus))
    session.add(change)
    session.info[_LOGGED] = (transaction, change)
    if version % _TRIM_EVERY == 0:
        session.execute(delete(CatalogChange).where(CatalogChange.version <= version - KEPT))


def _listed(known: Iterable[Any], more: Iterable[Any]) -> str:
    """The sorted union as a JSON list."""
    return json.dumps(sorted({*known, *more}))


def signal_commits(sessions: sessionmaker[Session], beacon: Beacon) -> None:
    """Signal ``beacon`` after each commit of these sessions that changed the catalog (see :func:`bump`)."""

    def committed(session: Session) -> None:
        if session.info.pop(_LOGGED, None) is not None:
            beacon.signal()

    event.listen(sessions, "after_commit", committed)


class VersionReader:
    """Reads the catalog's version, as every search does first: one statement through the driver, on a database
    connection held for it, under a lock (a pooled connection and SQLAlchemy's execution cost about ten times the
    CPU: BENCHMARKS.md); thread-safe. With a ``beacon`` that every writer signals (:func:`signal_commits`), the
    statement runs only when it moved, or ``beacon.RECHECK_S`` passed."""

    def __init__(self, engine: Engine, beacon: Beacon | None = None) -> None:
        self._engine = engine
        self._sql = str(select(CatalogState.version).where(CatalogState.id == 1)
                        .compile(engine, compile_kwargs={"literal_binds": True}))
        self._lock = threading.Lock()
        self._connection: Any = None
        self._watched = Watched(self._ask, beacon)

    def __call__(self) -> int:
        return self._watched()

    def _ask(self) -> int:
        with self._lock:
            held = self._connection is not None
            try:
                return self._read()
            except Exception:
                self._drop(invalidate=True)  # a broken connection is not kept
                if not held:
                    raise
            return self._read()  # the held connection may have been closed by the server: once more, on a new one

    def _read(self) -> int:
        if self._connection is None:
            self._connection = self._engine.raw_connection()
        cursor = self._connection.cursor()
        try:
            cursor.execute(self._sql)
            row = cursor.fetchone()
        finally:
            cursor.close()
        self._connection.rollback()  # ends the read's transaction where the driver began one
        return int(row[0]) if row and row[0] is not None else 0

    def close(self) -> None:
        with self._lock:
            self._drop(invalidate=False)

    def _drop(self, invalidate: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.invalidate() if invalidate else connection.close()


@dataclass(frozen=True)
class Changed:
    """The items and products that changed between two versions."""

    items: frozenset[int]
    skus: frozenset[str]


def changes_between(connection: Connection, seen: int, current: int) -> Changed | None:
    """What changed after version ``seen`` up to ``current``; None when that is not known item by item (a change of
    anything, versions no longer, or not yet, in the log, or a version that went back: another database)."""
    if current <= seen:
        return None
    rows = connection.execute(_CHANGES, {"seen": seen, "current": current}).all()
    if [row.version for row in rows] != list(range(seen + 1, current + 1)) or any(r.items is None for r in rows):
        return None
    return Changed(frozenset(i for row in rows for i in json.loads(row.items)),
                   frozenset(s for row in rows for s in json.loads(row.skus)))

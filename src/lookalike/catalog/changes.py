"""The catalog's version and its change log: every change of items or products increments the version, in the
change's own transaction, and records which items and products it touched, so that a process holding what it
read of the catalog (``catalog.view``) forgets only those instead of everything."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.orm import Session

from lookalike.catalog.models import CatalogChange, CatalogState

KEPT = 10_000  # change rows kept; a process further behind than that forgets everything it read
_TRIM_EVERY = 500
_CHANGES = (select(CatalogChange.version, CatalogChange.items, CatalogChange.skus)
            .where(CatalogChange.version > bindparam("seen"), CatalogChange.version <= bindparam("current"))
            .order_by(CatalogChange.version))


def bump(session: Session, items: Iterable[int] | None, skus: Iterable[str] = ()) -> None:
    """Increment the catalog's version (creating its row the first time) within the caller's transaction, and log
    that these items (None: any item) and these products changed."""
    version = session.execute(update(CatalogState).where(CatalogState.id == 1)
                              .values(version=CatalogState.version + 1).returning(CatalogState.version)).scalar()
    if version is None:
        session.add(CatalogState(id=1, version=1))
        version = 1
    listed = None if items is None else json.dumps(sorted({int(i) for i in items}))
    session.add(CatalogChange(version=version, items=listed, skus=json.dumps(sorted(set(skus)))))
    if version % _TRIM_EVERY == 0:
        session.execute(delete(CatalogChange).where(CatalogChange.version <= version - KEPT))


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

"""Typed, indexed attributes of catalog items: what filters and facets are answered from.

An item's attributes are its category, its own metadata (a manifest's extra columns) and, for an item showing a
product, the product's attributes. Each value is stored as one row of ``item_attributes`` with its kind:

- ``bool`` (``num`` 0 or 1), ``number`` (``num``), ``date`` (an ISO date or time, ``num`` its POSIX seconds and
  ``text`` the date as given), ``text`` (``text``, up to ``MAX_TEXT`` characters; longer ones, such as
  descriptions, are not indexed);
- a list gives one row per element (sizes ``["S", "M"]`` match ``size: "M"``); objects and nulls are skipped.

Every write goes through the transaction that changes the items, and bumps ``catalog_state.version``, which tells
every process that an attribute index built before is stale.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from lookalike.catalog.changes import bump
from lookalike.catalog.models import Item, ItemAttribute, Product

MAX_NAME = 64
MAX_TEXT = 200
MAX_VALUES = 50  # values of one attribute kept per item
CHUNK = 500
INTERNAL = frozenset({"position", "filename"})  # metadata Lookalike writes for itself
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")

Typed = tuple[str, float | None, str | None]  # (kind, num, text)


def typed_values(value: Any) -> list[Typed]:
    """The indexed forms of one attribute value (see the module docstring); [] for what is not indexed."""
    if isinstance(value, list | tuple):
        return [t for v in value[:MAX_VALUES] if not isinstance(v, list | tuple) for t in typed_values(v)]
    if isinstance(value, bool):
        return [("bool", float(value), None)]
    if isinstance(value, int | float):
        return [("number", float(value), None)] if math.isfinite(value) else []
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > MAX_TEXT:
            return []
        when = parse_date(text)
        return [("date", when, text)] if when is not None else [("text", None, text)]
    return []


def parse_date(text: str) -> float | None:
    """POSIX seconds of an ISO date or date-time (UTC unless it says otherwise), or None."""
    if not _ISO_DATE.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(text[:10]), datetime.min.time())
        except ValueError:
            return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def attribute_rows(item: int, category: str | None, attributes: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``item_attributes`` rows of one item."""
    rows = [{"item": item, "name": "category", "kind": "text", "num": None, "text": category[:MAX_TEXT]}] \
        if category else []
    for name, value in attributes.items():
        if name == "category" or name in INTERNAL or not name or len(name) > MAX_NAME:
            continue
        rows += [{"item": item, "name": name, "kind": kind, "num": num, "text": text}
                 for kind, num, text in typed_values(value)]
    return rows


def write_attributes(session: Session, items: dict[int, tuple[str | None, dict[str, Any]]]) -> None:
    """Replace the attribute rows of these items (id -> (category, attributes)) within the caller's transaction."""
    _delete_rows(session, items)
    _insert_rows(session, items)
    bump(session, items)


def add_attributes(session: Session, items: dict[int, tuple[str | None, dict[str, Any]]]) -> None:
    """Write the attribute rows of items that have none yet (new ones) within the caller's transaction."""
    _insert_rows(session, items)
    bump(session, items)


def forget_attributes(session: Session, items: Iterable[int]) -> None:
    """Delete the attribute rows of these items within the caller's transaction."""
    wanted = _delete_rows(session, items)
    bump(session, wanted)


def _insert_rows(session: Session, items: dict[int, tuple[str | None, dict[str, Any]]]) -> None:
    rows = [row for item, (category, attributes) in items.items() for row in attribute_rows(item, category, attributes)]
    if rows:
        session.execute(insert(ItemAttribute), rows)


def _delete_rows(session: Session, items: Iterable[int]) -> list[int]:
    wanted = sorted({int(i) for i in items})
    for start in range(0, len(wanted), CHUNK):
        session.execute(delete(ItemAttribute).where(ItemAttribute.item.in_(wanted[start : start + CHUNK])))
    return wanted


class AttributeRepository:
    """Reads of the attribute rows, and the one-off fill of a database made before them."""

    def __init__(self, sessions: sessionmaker[Session], version: Callable[[], int]) -> None:
        self._sessions = sessions
        self.version = version  # the catalog's version (``catalog.changes.VersionReader``)

    def kinds(self) -> dict[str, dict[str, int]]:
        """Each attribute name's kinds and how many values of each."""
        out: dict[str, dict[str, int]] = {}
        with self._sessions() as session:
            query = select(ItemAttribute.name, ItemAttribute.kind, func.count()).group_by(ItemAttribute.name,
                                                                                         ItemAttribute.kind)
            for name, kind, count in session.execute(query):
                out.setdefault(name, {})[kind] = int(count)
        return out

    def values(self, name: str) -> tuple[np.ndarray, np.ndarray, list[str | None], np.ndarray]:
        """Every value of one attribute: (item ids, numbers (NaN where none), texts, kinds), by item."""
        with self._sessions() as session:
            rows = session.execute(select(ItemAttribute.item, ItemAttribute.num, ItemAttribute.text,
                                          ItemAttribute.kind).where(ItemAttribute.name == name)
                                   .order_by(ItemAttribute.item)).all()
        items = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        nums = np.fromiter((np.nan if r[1] is None else r[1] for r in rows), np.float64, len(rows))
        return items, nums, [r[2] for r in rows], np.array([r[3] for r in rows], dtype=object)

    def fill(self) -> int:
        """Write the attributes of every item (for a database made before attributes were indexed); returns the
        items written."""
        done = 0
        last = 0
        with self._sessions() as session:
            products = {sku: dict(attributes or {}) for sku, attributes in
                        session.execute(select(Product.sku, Product.attributes))}
        while True:
            with self._sessions() as session, session.begin():
                rows = session.execute(select(Item.id, Item.category, Item.extra, Item.sku).where(Item.id > last)
                                       .order_by(Item.id).limit(5000)).all()
                if not rows:
                    return done
                write_attributes(session, {item: (category, {**dict(extra or {}), **products.get(sku or "", {})})
                                           for item, category, extra, sku in rows})
                done += len(rows)
                last = rows[-1][0]

"""Filters and facets over the items' typed attributes (``catalog.attributes``).

A filter is a JSON object of conditions, all of which an item must meet::

    {"category": ["Dress", "Skirt"], "price": {"lte": 50}, "brand": ["A", "B"], "size": "M", "in_stock": true,
     "released": {"gte": "2026-01-01"}}

- a value (text, number, true/false, an ISO date) means "equals"; a list means "any of" (``{"in": [...]}`` too);
- ``{"lt": x, "lte": x, "gt": x, "gte": x}`` bound a number or a date (several at once make a range);
- text matches without regard to case; an item with a list (sizes) matches when any of its values does.

Each field must be an attribute the catalog has, and each value of its kind: otherwise InvalidRequestError (a 422)
names the problem. The answer is the sorted ids of the matching items, from posting lists kept per attribute in
memory (loaded from the database on first use, and again when another change of the catalog moved its version),
so a filter costs a few scatters into a mask over the item ids, not a query per search.

Facets count, among the items a filter matches (or all), the items of each value of the attributes with few
distinct values, and of a few ranges of each numeric one.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lookalike.catalog.attributes import AttributeRepository, parse_date
from lookalike.errors import InvalidRequestError

RANGE_OPS = {"lt", "lte", "gt", "gte"}
OPS = RANGE_OPS | {"eq", "in"}
MAX_VALUES = 100  # values in one condition
FACET_VALUES = 50  # attributes with more distinct values get no value counts (titles, links, ...)
FACET_RANGES = 5
RECENT = 64  # filters whose matching ids are remembered (until the catalog changes)
_NONE = np.zeros(0, np.int64)
FACET_EXCLUDED = frozenset({"title", "name", "description", "link", "url", "image_link"})  # free text, not facets


@dataclass(frozen=True)
class Condition:
    """One field's condition: ``values`` (any of; floats for numbers, dates and booleans, case-folded texts) or a
    numeric range."""

    name: str
    kind: str
    values: tuple[Any, ...] = ()
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False


@dataclass(frozen=True)
class Filter:
    conditions: tuple[Condition, ...]
    key: str  # the filter as canonical JSON, for caches and logs


@dataclass
class _Postings:
    """One attribute's values: text value -> item ids (sorted), and numbers sorted with their item ids."""

    kind: str
    texts: dict[str, np.ndarray] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)  # case-folded text -> the text as first seen
    numbers: np.ndarray = field(default_factory=lambda: np.zeros(0))
    number_items: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    size: int = 0  # the largest item id with a value, plus one


class AttributeIndex:
    """Posting lists per attribute name (see the module docstring); thread-safe."""

    def __init__(self, repository: AttributeRepository) -> None:
        self.repository = repository
        self._lock = threading.Lock()
        self._version = -1
        self._kinds: dict[str, str] = {}
        self._postings: dict[str, _Postings] = {}
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()

    def _current(self) -> None:
        """Drop what was loaded when the catalog changed since (call with the lock held)."""
        version = self.repository.version()
        if version != self._version:
            counts = self.repository.kinds()
            self._kinds = {name: max(kinds, key=lambda k: kinds[k]) for name, kinds in counts.items()}
            self._postings, self._version = {}, version
            self._recent.clear()

    def kinds(self) -> dict[str, str]:
        """Each attribute's kind (its most frequent one)."""
        with self._lock:
            self._current()
            return dict(self._kinds)

    def parse(self, raw: dict[str, Any] | str | None) -> Filter | None:
        """A filter from JSON (an object, or its text); None for none or ``{}``; InvalidRequestError says what is
        wrong with a bad one."""
        if raw is None or raw == "":
            return None
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise InvalidRequestError(f"filter is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise InvalidRequestError("filter must be a JSON object of field: condition")
        if not raw:
            return None
        kinds = self.kinds()
        conditions = []
        for name, condition in raw.items():
            if name not in kinds:
                known = ", ".join(sorted(kinds)[:30]) or "none (the catalog has no attributes)"
                raise InvalidRequestError(f"unknown filter field {name!r}; known: {known}")
            conditions.append(_condition(name, kinds[name], condition))
        return Filter(tuple(conditions), json.dumps(raw, sort_keys=True, default=str))

    def matching(self, query: Filter) -> np.ndarray:
        """The sorted ids of the items that meet every condition (the last RECENT answers are remembered)."""
        with self._lock:
            self._current()
            found = self._recent.get(query.key)
            if found is not None:
                self._recent.move_to_end(query.key)
                return found
            postings = [(self._load(c.name), c) for c in query.conditions]
            size = max((p.size for p, _ in postings), default=0)
            result = np.ones(size, bool)
            for posting, condition in postings:
                result &= self._mask(posting, condition, size)
            found = np.flatnonzero(result).astype(np.int64)
            self._recent[query.key] = found
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
            return found

    def facets(self, allowed: np.ndarray | None, names: list[str] | None = None) -> dict[str, Any]:
        """Counts of items by value (attributes with at most FACET_VALUES values) and by range (numeric ones)
        among ``allowed`` (None: every item): ``{"values": {name: [{"value", "count"}]}, "ranges": {name:
        [{"from", "to", "count"}]}}``, biggest counts first."""
        with self._lock:
            self._current()
            wanted = names if names is not None else sorted(set(self._kinds) - FACET_EXCLUDED)
            values: dict[str, list[dict[str, Any]]] = {}
            ranges: dict[str, list[dict[str, Any]]] = {}
            mask = None
            if allowed is not None:
                mask = np.zeros(int(allowed.max()) + 1 if len(allowed) else 1, bool)
                mask[allowed] = True
            for name in wanted:
                if name not in self._kinds:
                    continue
                postings = self._load(name)
                if postings.kind in ("number", "date") and len(postings.numbers):
                    ranges[name] = _ranges(postings, mask)
                elif postings.kind == "text" and 0 < len(postings.texts) <= FACET_VALUES:
                    counts = [(postings.shown[text], _count(ids, mask)) for text, ids in postings.texts.items()]
                    values[name] = [{"value": v, "count": c} for v, c in sorted(counts, key=lambda x: (-x[1], x[0]))]
                elif postings.kind == "bool" and len(postings.numbers):
                    flags = [(flag, _count(_range(postings, float(flag), float(flag)), mask)) for flag in (True, False)]
                    values[name] = [{"value": flag, "count": c} for flag, c in flags]
            return {"values": values, "ranges": ranges}

    def _load(self, name: str) -> _Postings:
        found = self._postings.get(name)
        if found is not None:
            return found
        items, numbers, texts, kinds = self.repository.values(name)
        postings = _Postings(self._kinds.get(name, "text"))
        is_number = np.isfinite(numbers)
        order = np.argsort(numbers[is_number], kind="stable")
        postings.numbers, postings.number_items = numbers[is_number][order], items[is_number][order]
        by_text: dict[str, list[int]] = {}
        for item, text, kind in zip(items.tolist(), texts, kinds.tolist(), strict=True):
            if text is not None and kind == "text":
                folded = text.casefold()
                by_text.setdefault(folded, []).append(item)
                postings.shown.setdefault(folded, text)
        postings.texts = {text: np.unique(np.asarray(ids, np.int64)) for text, ids in by_text.items()}
        postings.size = int(items.max()) + 1 if len(items) else 0
        self._postings[name] = postings
        return postings

    @staticmethod
    def _mask(postings: _Postings, condition: Condition, size: int) -> np.ndarray:
        """Which item ids (up to ``size``) meet one condition, as a mask: scattering ids costs what they are, not
        a sort."""
        mask = np.zeros(size, bool)
        if condition.values:
            for value in condition.values:
                ids = postings.texts.get(value, _NONE) if isinstance(value, str) else _range(postings, value, value)
                mask[ids] = True
            return mask
        low = np.searchsorted(postings.numbers, condition.low, side="right" if condition.low_open else "left")
        high = np.searchsorted(postings.numbers, condition.high, side="left" if condition.high_open else "right")
        mask[postings.number_items[low:high]] = True
        return mask


def _range(postings: _Postings, low: float, high: float) -> np.ndarray:
    """The ids of the items with a value from ``low`` to ``high`` (an item with several values may repeat)."""
    start = np.searchsorted(postings.numbers, low, side="left")
    end = np.searchsorted(postings.numbers, high, side="right")
    return postings.number_items[start:end]


def _count(ids: np.ndarray, mask: np.ndarray | None) -> int:
    if mask is None:
        return int(len(ids))
    inside = ids[ids < len(mask)]
    return int(mask[inside].sum())


def _ranges(postings: _Postings, mask: np.ndarray | None) -> list[dict[str, Any]]:
    """FACET_RANGES ranges with round edges, from the quantiles of every item's values (so they stay put while a
    filter narrows the counts)."""
    values = postings.numbers
    quantiles = np.quantile(values, np.linspace(0, 1, FACET_RANGES + 1)[1:-1])
    edges = sorted({edge for edge in (_round(float(q)) for q in quantiles) if values[0] < edge <= values[-1]})
    bounds = [-math.inf, *edges, math.inf]
    out = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        start = np.searchsorted(values, low, side="left")
        end = np.searchsorted(values, high, side="left") if math.isfinite(high) else len(values)
        ids = np.unique(postings.number_items[start:end])
        out.append({"from": None if math.isinf(low) else low, "to": None if math.isinf(high) else high,
                    "count": _count(ids, mask)})
    return out


def _round(value: float) -> float:
    """A round number near ``value`` (two significant digits)."""
    if value == 0 or not math.isfinite(value):
        return value
    step = 10 ** (math.floor(math.log10(abs(value))) - 1)
    return round(round(value / step) * step, 10)


def _condition(name: str, kind: str, raw: Any) -> Condition:
    if isinstance(raw, dict):
        unknown = set(raw) - OPS
        if unknown or not raw:
            raise InvalidRequestError(f"filter {name!r}: use {', '.join(sorted(OPS))}; got {sorted(raw) or 'nothing'}")
        if raw.keys() & RANGE_OPS:
            if raw.keys() - RANGE_OPS:
                raise InvalidRequestError(f"filter {name!r}: a range (lt, lte, gt, gte) cannot be mixed with eq or in")
            if kind not in ("number", "date"):
                raise InvalidRequestError(f"filter {name!r}: a range needs a number or date field; {name} is {kind}")
            bounds = {op: _scalar(name, kind, value) for op, value in raw.items()}
            low_op = "gt" if "gt" in bounds else "gte"
            high_op = "lt" if "lt" in bounds else "lte"
            return Condition(name, kind, low=bounds.get(low_op, -math.inf), high=bounds.get(high_op, math.inf),
                             low_open=low_op == "gt", high_open=high_op == "lt")
        raw = raw.get("in", raw.get("eq"))
    values = raw if isinstance(raw, list) else [raw]
    if not values or len(values) > MAX_VALUES:
        raise InvalidRequestError(f"filter {name!r}: give 1 to {MAX_VALUES} values")
    return Condition(name, kind, tuple(_scalar(name, kind, v) for v in values))


def _scalar(name: str, kind: str, value: Any) -> Any:
    """A filter value in the form the postings keep; InvalidRequestError when it is not of the field's kind."""
    wrong = InvalidRequestError(f"filter {name!r} is a {kind} field; {value!r} is not a {kind}")
    if kind == "text":
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value).strip().casefold()
        raise wrong
    if kind == "bool":
        if isinstance(value, bool):
            return float(value)
        raise wrong
    if kind == "date":
        when = parse_date(value) if isinstance(value, str) else None
        if when is None:
            raise wrong
        return when
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise wrong

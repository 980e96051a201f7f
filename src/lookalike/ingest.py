"""Adding images to the catalog and keeping the vector index in step with the catalog database.

The database is the source of truth; the index is derived from it (and the feature cache). Ingest
commits each batch to the database, then adds it to the index, and saves the index every
``checkpoint_every`` items. After a crash, :func:`reconcile` (run whenever an engine opens) adds what the
database has and the index lacks, from cached features, and drops what the index has and the database
does not, so the two always agree again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lookalike.catalog.repository import ItemRecord, NewItem
from lookalike.data.sources import CatalogEntry
from lookalike.engine import Engine
from lookalike.errors import ImageDecodeError
from lookalike.hashing import content_key
from lookalike.io.images import read_image_file
from lookalike.item_vectors import embed_records

log = logging.getLogger(__name__)
INDEX_CHUNK = 4096  # items embedded and added to the index at a time (bounds the features held in memory)


@dataclass
class IngestReport:
    """What an ingest did. ``already_present`` items were unchanged; ``replaced`` ones had new image bytes at their
    path, or a new category (a new catalog id, the old one removed); ``updated`` ones new ``item_id`` or metadata."""

    seen: int = 0
    already_present: int = 0
    added: int = 0
    replaced: int = 0
    updated: int = 0
    decoded: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    index_type: str = ""

    @property
    def images_per_second(self) -> float:
        processed = self.added + self.replaced + len(self.failures)
        return processed / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ReconcileReport:
    """How the index was brought in line with the database."""

    added: int = 0
    removed: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.unreadable)


Progress = Callable[[int, int], None]  # (items done, items total)


def ingest(engine: Engine, entries: Iterable[CatalogEntry], progress: Progress | None = None) -> IngestReport:
    """Bring the entries into the catalog: add new paths, replace items whose image bytes or category changed,
    update the ``item_id`` and metadata of the rest where they changed; unreadable images are skipped and
    reported (an item whose file became unreadable keeps its last good image)."""
    started = time.perf_counter()
    report = IngestReport()
    unique = list({str(e.path): e for e in entries}.values())
    report.seen = len(unique)
    present = {r.path: r for r in engine.catalog.get_items_by_paths(str(e.path) for e in unique)}
    todo: list[CatalogEntry] = []
    replacing: dict[str, ItemRecord] = {}
    updates: list[tuple[int, str | None, dict[str, Any]]] = []
    for entry in unique:
        record = present.get(str(entry.path))
        if record is None:
            todo.append(entry)
            continue
        try:
            same_image = content_key(read_image_file(entry.path)) == record.content_hash
        except ImageDecodeError as exc:
            report.failures.append((str(entry.path), f"{exc}; item {record.id} keeps its last image"))
            continue
        if not same_image or entry.category != record.category:  # what the index holds changed
            todo.append(entry)
            replacing[str(entry.path)] = record
        elif (entry.item_id, entry.metadata) != (record.item_id, record.metadata):
            updates.append((record.id, entry.item_id, entry.metadata))
        else:
            report.already_present += 1
    if updates:
        engine.catalog.update_attributes(updates)
        report.updated = len(updates)
    version = engine.model_version
    since_save = 0
    done = 0
    for batch in engine.featurizer.iter_batches(todo, lambda e: e.path):
        report.failures += [(str(e.path), reason) for e, reason in batch.failures]
        report.decoded += batch.decoded
        if batch.items:
            new = [NewItem(str(e.path), key, e.category, e.item_id, e.metadata)
                   for e, key in zip(batch.items, batch.keys, strict=True)]
            old = [replacing[str(e.path)].id for e in batch.items if str(e.path) in replacing]
            ids = engine.catalog.add_items(new, version, replace=old)  # one transaction
            engine.store.add(np.asarray(ids), engine.embed(batch.features), [e.category for e in batch.items])
            engine.store.remove(np.asarray(old, np.int64))
            report.replaced += len(old)
            report.added += len(ids) - len(old)
            since_save += len(ids)
        done += len(batch.items) + len(batch.failures)
        if since_save >= engine.checkpoint_every:
            engine.save()
            since_save = 0
        if progress:
            progress(done, len(todo))
    report.index_type = engine.store.optimize(engine.memory_budget_bytes).key
    engine.save()
    report.seconds = time.perf_counter() - started
    for path, reason in report.failures:
        log.warning("skipped %s: %s", path, reason)
    return report


def reconcile(engine: Engine, progress: Progress | None = None) -> ReconcileReport:
    """Make the index hold exactly the catalog's items (see the module docstring)."""
    report = ReconcileReport()
    db_ids = np.asarray(engine.catalog.ids(), np.int64)
    index_ids = engine.store.ids()
    extra = np.setdiff1d(index_ids, db_ids, assume_unique=True)
    if len(extra):
        report.removed = engine.store.remove(extra)
    missing = np.setdiff1d(db_ids, index_ids, assume_unique=True)
    if len(missing):
        records = engine.catalog.get_items(missing.tolist())
        added, report.unreadable = index_records(engine, [records[i] for i in sorted(records)], progress)
        report.added = added
    if report.changed:
        engine.store.optimize(engine.memory_budget_bytes)
        engine.save()
    return report


def index_records(
    engine: Engine, records: Sequence[ItemRecord], progress: Progress | None = None
) -> tuple[int, list[tuple[str, str]]]:
    """Embed catalog items (cached features by content hash; the rest decoded again) and add them to the index,
    a chunk at a time."""
    unreadable: list[tuple[str, str]] = []
    added = 0
    for start in range(0, len(records), INDEX_CHUNK):
        kept, vectors, failures = embed_records(engine.featurizer, engine.head, records[start : start + INDEX_CHUNK])
        if kept:
            engine.store.add(np.array([r.id for r in kept]), vectors, [r.category for r in kept])
        added += len(kept)
        unreadable += [(r.path, reason) for r, reason in failures]
        if progress:
            progress(added + len(unreadable), len(records))
    return added, unreadable


def reindex(engine: Engine, progress: Progress | None = None) -> ReconcileReport:
    """Rebuild the whole index from the catalog with the current model (expects a fresh, empty store)."""
    report = reconcile(engine, progress)  # optimizes and saves the index when it added anything
    engine.catalog.set_model_version(engine.catalog.ids(), engine.model_version)
    return report

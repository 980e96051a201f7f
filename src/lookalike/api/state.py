"""What the service holds while it runs: the engine, the search service, calibration, and a write lock."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from lookalike.batching import MicroBatcher
from lookalike.confidence import ConfidenceModel, load_or_calibrate
from lookalike.config import Settings
from lookalike.duplicates import DuplicateGroup, DuplicateThreshold, find_duplicates, load_or_calibrate_threshold
from lookalike.engine import Engine
from lookalike.filters import AttributeIndex
from lookalike.history import SearchHistory
from lookalike.locking import WriteLock
from lookalike.metrics import BATCH_SIZE
from lookalike.search import SearchService
from lookalike.taste import TasteProfiles


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    service: SearchService
    confidence: ConfidenceModel
    write_lock: WriteLock
    taste: TasteProfiles
    history: SearchHistory
    started: float = field(default_factory=time.time)
    map_lock: threading.Lock = field(default_factory=threading.Lock)
    embedding_map: dict[str, Any] | None = None
    batchers: list[MicroBatcher] = field(default_factory=list)
    duplicates_lock: threading.Lock = field(default_factory=threading.Lock)
    _duplicates: DuplicateThreshold | None = None
    _groups: tuple[tuple[object, ...], list[DuplicateGroup]] | None = None
    _filters: AttributeIndex | None = None

    @property
    def filters(self) -> AttributeIndex:
        """The attribute index that answers filters and facets (its posting lists loaded as they are asked for)."""
        if self._filters is None:
            self._filters = AttributeIndex(self.engine.catalog.attributes)
        return self._filters

    @classmethod
    def open(cls, settings: Settings, engine: Engine) -> AppState:
        confidence = load_or_calibrate(engine, settings.index_dir / "confidence.json")
        lock = WriteLock(settings.home / "write.lock")
        batchers: list[MicroBatcher] = []
        embed_inputs = one_thread_embedding(engine) if settings.query_batching else engine.embed_inputs
        size = engine.extractor.preprocessing.input_size
        embed_inputs(np.zeros((1, 3, size, size), np.float32))  # builds the head's session now, not in a search
        if settings.query_batching:
            runners = max(1, (os.cpu_count() or 1) // settings.workers)
            embed = MicroBatcher.of(embed_inputs, settings.batch_size, runners, BATCH_SIZE.labels("embed").observe)
            search: MicroBatcher[tuple[np.ndarray, np.ndarray]] = MicroBatcher(
                lambda queries, key: engine.store.search(queries, *cast(tuple[int, str | None], key)),
                settings.batch_size, runners, BATCH_SIZE.labels("index").observe)
            service = SearchService(engine, embed, lambda queries, k, category: search(queries, (k, category)),
                                    settings.colour_weight)
            batchers = [embed, search]
        else:
            service = SearchService(engine, colour_weight=settings.colour_weight)
        taste = TasteProfiles(service)
        return cls(settings, engine, service, confidence, lock, taste, SearchHistory(taste), batchers=batchers)

    @contextmanager
    def changing(self) -> Iterator[None]:
        """A catalog change: other threads and server workers wait, and it starts from the latest saved index."""
        with self.write_lock:
            self.engine.store.refresh()
            yield

    def close(self) -> None:
        for batcher in self.batchers:
            batcher.close()
        self.history.close()
        self.engine.close()

    def duplicate_threshold(self) -> DuplicateThreshold:
        """The calibrated near-duplicate threshold, fitted on first use (and again when the catalog changed)."""
        with self.duplicates_lock:
            current = self._duplicates
            if current is None or not current.current_for(self.engine):
                current = load_or_calibrate_threshold(self.engine, self.settings.index_dir / "duplicates.json")
                self._duplicates = current
            return current

    def duplicate_groups(self, threshold: float) -> list[DuplicateGroup]:
        """:func:`find_duplicates`, remembered until the model, the catalog or the threshold changes."""
        ids = self.engine.store.ids()
        key = (self.engine.model_version, len(ids), int(ids.max()) if len(ids) else -1, threshold)
        cached = self._groups
        if cached is not None and cached[0] == key:
            return cached[1]
        groups = find_duplicates(self.engine, threshold)
        self._groups = (key, groups)
        return groups


def one_thread_embedding(engine: Engine) -> Callable[[np.ndarray], np.ndarray]:
    """Backbone inputs -> embeddings on one ONNX Runtime thread per call: a server's calls are mostly of one image,
    and splitting one image over several threads costs more CPU in all than it saves time (BENCHMARKS.md); the
    server runs several calls at once instead."""
    extractor = engine.extractor if engine.extractor.threads == 1 else engine.extractor.with_threads(1)
    head = engine.head if engine.head.threads == 1 else dataclasses.replace(engine.head, threads=1)
    return lambda inputs: head(extractor(inputs))

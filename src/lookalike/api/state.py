"""What the service holds while it runs: the engine, the search service, calibration, and a write lock."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lookalike.batching import MicroBatcher
from lookalike.confidence import ConfidenceModel, load_or_calibrate
from lookalike.config import Settings
from lookalike.engine import Engine
from lookalike.search import SearchService


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    service: SearchService
    confidence: ConfidenceModel
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)
    map_lock: threading.Lock = field(default_factory=threading.Lock)
    embedding_map: dict[str, Any] | None = None
    batcher: MicroBatcher | None = None

    @classmethod
    def open(cls, settings: Settings, engine: Engine) -> AppState:
        confidence = load_or_calibrate(engine, settings.index_dir / "confidence.json")
        batcher = MicroBatcher(engine.embed_inputs, settings.batch_size) if settings.query_batching else None
        return cls(settings, engine, SearchService(engine, batcher), confidence, batcher=batcher)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.engine.close()

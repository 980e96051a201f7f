"""Calibrations fitted on the catalog (confidence, duplicate threshold), kept as JSON files beside the index and
refitted when the model changes or the catalog grows or shrinks by more than 20%."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Self, TypeVar

from lookalike.engine import Engine
from lookalike.io.files import write_atomically

REFIT_CHANGE = 0.2


class Calibration:
    """Mixin for a dataclass of JSON values with ``model_version`` and ``items`` (the catalog size it was fitted
    on): ``save(path)``, ``load(path)`` (None when absent or unreadable) and ``current_for(engine)``."""

    model_version: str
    items: int

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(asdict(self)))  # type: ignore[call-overload]

    @classmethod
    def load(cls, path: Path) -> Self | None:
        try:
            fields: dict[str, Any] = json.loads(path.read_text())
            return cls(**fields)
        except (OSError, ValueError, TypeError):
            return None

    def current_for(self, engine: Engine) -> bool:
        size = len(engine.store)
        return self.model_version == engine.model_version and abs(self.items - size) <= REFIT_CHANGE * max(size, 1)


Fitted = TypeVar("Fitted", bound=Calibration)


def load_or_fit(kind: type[Fitted], path: Path, engine: Engine, fit: Callable[[Engine], Fitted]) -> Fitted:
    """The saved calibration when it is current for this engine, else a freshly fitted (and saved) one."""
    model = kind.load(path)
    if model is not None and model.current_for(engine):
        return model
    model = fit(engine)
    model.save(path)
    return model

"""Health, statistics, categories, history, the embedding map and the latest evaluation report."""

from __future__ import annotations

import os
import threading
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import FileResponse, JSONResponse

from lookalike.api.deps import State
from lookalike.api.schemas import Category, Health, HistoryEntry, Stats
from lookalike.embedding_map import load_or_compute_map
from lookalike.evaluation.report import latest_report

router = APIRouter(prefix="/api", tags=["catalog"])
REPORT_FILES = {"report.json", "report.md", "confusion.png", "per_category.png", "curves.png"}


@router.get("/health", response_model=Health)
def health(state: State) -> Health:
    return Health(status="ok", items=len(state.engine.store), model_version=state.engine.model_version,
                  worker=os.getpid())


@router.get("/stats", response_model=Stats)
def stats(state: State) -> Stats:
    engine = state.engine
    return Stats(items=len(engine.store), categories=len(engine.store.category_counts()),
                 index=engine.store.describe(), backbone=engine.extractor.fingerprint, head=engine.head.version,
                 dim=engine.head.dim, searches=engine.catalog.count_searches(), confidence=asdict(state.confidence))


@router.get("/categories", response_model=list[Category])
def categories(state: State) -> list[Category]:
    counts = state.engine.store.category_counts()
    return [Category(name=name, count=n) for name, n in sorted(counts.items()) if n]


@router.get("/history", response_model=list[HistoryEntry])
def history(state: State, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[HistoryEntry]:
    return [HistoryEntry(id=s.id, created_at=_utc(s.created_at).isoformat(), query=s.query, k=s.k, category=s.category,
                         took_ms=s.took_ms, results=s.results)
            for s in state.engine.catalog.recent_searches(limit)]


def _utc(moment: datetime) -> datetime:
    """Stored times are UTC; SQLite drops the zone, so put it back."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _compute_map(state: Any) -> None:
    try:
        state.embedding_map = load_or_compute_map(state.engine, state.settings.index_dir / "embedding-map.json")
    finally:
        state.map_lock.release()


@router.get("/embedding-map", responses={202: {"description": "still being computed; ask again shortly"}})
def embedding_map(state: State) -> Any:
    """The catalog projected to 2-D (a sample), computed once per index version in the background."""
    current = state.embedding_map
    if current and current["model_version"] == state.engine.model_version:
        return current
    if state.map_lock.acquire(blocking=False):
        threading.Thread(target=_compute_map, args=(state,), daemon=True, name="embedding-map").start()
    return JSONResponse({"status": "computing"}, status_code=status.HTTP_202_ACCEPTED)


@router.get("/report")
def report(state: State) -> Any:
    """The latest `lookalike evaluate` report, with the URLs of its plots."""
    folder = latest_report(state.settings.home / "reports")
    if folder is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no evaluation yet: run `lookalike evaluate`")
    import json

    data = json.loads((folder / "report.json").read_text())
    data["files"] = {name: f"/api/report/files/{name}" for name in sorted(REPORT_FILES)}
    data["created"] = folder.name
    return data


@router.get("/report/files/{name}")
def report_file(state: State, name: str) -> FileResponse:
    folder = latest_report(state.settings.home / "reports")
    if folder is None or name not in REPORT_FILES or not (folder / name).is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report file {name!r}")
    return FileResponse(folder / name)

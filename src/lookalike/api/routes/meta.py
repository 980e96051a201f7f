"""Health, statistics, categories, history, the embedding map and the latest evaluation report."""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, JSONResponse

from lookalike.api.deps import Operator, Shopper, State
from lookalike.api.schemas import READ, Category, ErrorBody, Health, HistoryEntry, Stats, error_responses
from lookalike.api.state import AppState
from lookalike.embedding_map import MapFailed, MapJob, MapProgress
from lookalike.evaluation.report import latest_report

router = APIRouter(prefix="/api", tags=["catalog"])
REPORT_FILES = {"report.json", "report.md", "confusion.png", "per_category.png", "curves.png"}
PRIVATE_INDEX_FIELDS = {"directory", "uri"}  # where the index lives: for the operator, not for every visitor


@router.get("/health", response_model=Health)
def health(state: State) -> Health:
    return Health(status="ok", items=len(state.engine.store), model_version=state.engine.model_version,
                  worker=os.getpid())


@router.get("/stats", response_model=Stats)
def stats(state: State) -> Stats:
    """Catalog, model and index figures (no filesystem paths or server addresses: `lookalike info` has those)."""
    engine = state.engine
    state.history.flush()
    index = {key: value for key, value in engine.store.describe().items() if key not in PRIVATE_INDEX_FIELDS}
    return Stats(items=len(engine.store), products=engine.catalog.products.count(),
                 categories=len(engine.store.category_counts()),
                 index=index, backbone=engine.extractor.fingerprint, head=engine.head.version,
                 dim=engine.head.dim, searches=engine.catalog.count_searches(), confidence=asdict(state.confidence))


@router.get("/categories", response_model=list[Category])
def categories(state: State) -> list[Category]:
    counts = state.engine.store.category_counts()
    return [Category(name=name, count=n) for name, n in sorted(counts.items()) if n]


@router.get("/history", response_model=list[HistoryEntry], responses=error_responses(*READ, 403))
def history(state: State, shopper: Shopper, operator: Operator,
            limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[HistoryEntry]:
    """The shopper's own recent searches (``X-Shopper-Id`` or the dashboard's cookie); everyone's with the token."""
    if not operator and shopper is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "history is per shopper: send an X-Shopper-Id "
                            "header (or the dashboard's cookie), or the token for every shopper's searches")
    state.history.flush()
    return [HistoryEntry(id=s.id, created_at=_utc(s.created_at).isoformat(), query=s.query, k=s.k, category=s.category,
                         took_ms=s.took_ms, results=s.results)
            for s in state.engine.catalog.recent_searches(limit, None if operator else shopper)]


def _utc(moment: datetime) -> datetime:
    """Stored times are UTC; SQLite drops the zone, so put it back."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _map_job(request: Request, state: AppState) -> MapJob:
    """The app's map job, made on first use (``map_lock`` keeps it one when requests race)."""
    with state.map_lock:
        job = getattr(request.app.state, "map_job", None)
        if job is None:
            job = request.app.state.map_job = MapJob(state.settings.index_dir / "embedding-map.json")
        return job


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before asking again", "schema": {"type": "integer"}}}
MAP_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "still being computed: how far it got; ask again shortly", "headers": RETRY_AFTER},
    503: {"model": ErrorBody, "headers": RETRY_AFTER,
          "description": "the last computation failed (``detail`` says why); asking again starts another"},
}


@router.get("/embedding-map", responses=MAP_RESPONSES)
def embedding_map(request: Request, state: State) -> Any:
    """The catalog projected to 2-D (a sample), computed once per index version in a background thread; until it is
    ready, 202 with ``{"status": "computing", "progress": 0..1, "stage", "elapsed_s"}``; once after a failed
    computation, 503 (the next request starts another)."""
    try:
        found = _map_job(request, state).poll(state.engine)
    except MapFailed as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the embedding map could not be computed: {error}; "
                            "retry", headers={"Retry-After": "1"}) from error
    if isinstance(found, MapProgress):
        return JSONResponse(asdict(found), status_code=status.HTTP_202_ACCEPTED, headers={"Retry-After": "1"})
    return found


@router.get("/report", responses=error_responses(404))
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


@router.get("/report/files/{name}", responses=error_responses(404))
def report_file(state: State, name: str) -> FileResponse:
    folder = latest_report(state.settings.home / "reports")
    if folder is None or name not in REPORT_FILES or not (folder / name).is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report file {name!r}")
    return FileResponse(folder / name)

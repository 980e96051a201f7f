"""Duplicate listings (GET /api/duplicates), facet counts (GET /api/facets) and a shopper's recommendations
(GET /api/recommendations)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from lookalike.api.deps import QueryFilter, Shopper, State, dedupe_for
from lookalike.api.presenters import to_item, to_results
from lookalike.api.schemas import (
    READ,
    DuplicateCalibration,
    DuplicateGroup,
    DuplicatesResponse,
    FacetsResponse,
    Recommendations,
    error_responses,
)
from lookalike.search import MAX_K

router = APIRouter(prefix="/api", tags=["discover"])


@router.get("/duplicates", response_model=DuplicatesResponse, summary="Groups of near-identical catalog items",
            responses=error_responses(*READ))
def duplicates(
    state: State,
    threshold: Annotated[float | None, Query(gt=0, le=1, description="Cosine similarity; default calibrated.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Most groups returned (largest first).")] = 200,
) -> DuplicatesResponse:
    started = time.perf_counter()
    calibration = state.duplicate_threshold()
    chosen = calibration.threshold if threshold is None else threshold
    groups = state.duplicate_groups(chosen)
    shown = groups[:limit]
    records = state.engine.catalog.get_items(i for g in shown for i in g.ids)
    return DuplicatesResponse(
        threshold=chosen,
        calibration=DuplicateCalibration(**{k: v for k, v in asdict(calibration).items()
                                            if k in DuplicateCalibration.model_fields}),
        groups_total=len(groups), items_total=sum(len(g.ids) for g in groups),
        took_ms=round((time.perf_counter() - started) * 1000, 2),
        groups=[DuplicateGroup(items=[to_item(records[i]) for i in g.ids if i in records], min_score=g.min_score,
                               max_score=g.max_score) for g in shown],
    )


@router.get("/facets", response_model=FacetsResponse, summary="Counts of the catalog's items by attribute value",
            responses=error_responses(*READ))
def facets(state: State, narrowed: QueryFilter) -> FacetsResponse:
    """Items per value of each attribute with few values (category, brand, colour, size, in stock, ...) and per
    range of each numeric one (price), among the items the filter matches (or all)."""
    counts = state.filters.facets(narrowed.allowed)
    total = len(narrowed.allowed) if narrowed.allowed is not None else state.engine.catalog.count()
    return FacetsResponse(matching=total, filter=narrowed.filter.key if narrowed.filter else None,
                          kinds=state.filters.kinds(), **counts)


@router.get("/recommendations", response_model=Recommendations, summary="Items for a shopper, from their taste",
            responses=error_responses(*READ, 409))
def recommendations(
    state: State,
    shopper: Shopper,
    narrowed: QueryFilter,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    dedupe: bool = True,
) -> Recommendations:
    """Nearest to the shopper's taste (past searches and likes), leaving out what they were already shown or
    liked; empty until the shopper has searched."""
    if shopper is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "recommendations need a shopper: send an X-Shopper-Id header (or the dashboard's cookie)")
    started = time.perf_counter()
    state.history.flush()
    taste = state.taste.describe(shopper)
    found = state.taste.recommend(shopper, k, dedupe_for(state, dedupe).threshold, narrowed.allowed)
    return Recommendations(shopper=shopper, searches=taste.searches, likes=taste.likes,
                           took_ms=round((time.perf_counter() - started) * 1000, 2),
                           results=to_results(state, found.hits))

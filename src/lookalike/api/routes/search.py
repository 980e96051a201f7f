"""POST /api/search: an uploaded image -> ranked similar catalog items."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, UploadFile, status

from lookalike.api.deps import State
from lookalike.api.schemas import Result, SearchResponse
from lookalike.api.state import AppState
from lookalike.api.uploads import read_upload
from lookalike.search import MAX_K, SearchHit

router = APIRouter(prefix="/api", tags=["search"])


def to_results(state: AppState, hits: list[SearchHit]) -> list[Result]:
    confidence = state.confidence(np.array([h.score for h in hits], np.float64))
    return [
        Result(id=h.id, rank=h.rank, score=h.score, confidence=round(float(c), 4), category=h.category,
               item_id=h.item_id, image_url=f"/api/items/{h.id}/image",
               thumbnail_url=f"/api/items/{h.id}/image?size=thumb", metadata=h.metadata)
        for h, c in zip(hits, confidence, strict=True)
    ]


def check_category(state: AppState, category: str | None) -> str | None:
    """None for no filter; 422 naming the known categories for one the catalog does not have."""
    if not category:
        return None
    known = state.engine.store.category_counts()
    if category not in known:
        names = ", ".join(sorted(known)[:20]) or "none"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown category {category!r}; known: {names}")
    return category


@router.post("/search", response_model=SearchResponse, summary="Find catalog items similar to an image")
def search(
    state: State,
    file: Annotated[UploadFile, File(description="The query image (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC).")],
    k: Annotated[int, Form(ge=1, le=MAX_K, description="How many results.")] = 5,
    category: Annotated[str | None, Form(description="Only results of this category.")] = None,
) -> SearchResponse:
    data = read_upload(file, int(state.settings.max_upload_mb * 2**20))
    filter_category = check_category(state, category)
    response = state.service.search_images([data], k, filter_category)[0]
    results = to_results(state, response.hits)
    query_id = state.engine.catalog.record_search(
        (file.filename or "upload")[:200], k, filter_category, response.took_ms,
        [{"id": r.id, "score": r.score, "category": r.category} for r in results],
    )
    return SearchResponse(query_id=query_id, took_ms=round(response.took_ms, 2), k=k, category=filter_category,
                          results=results)

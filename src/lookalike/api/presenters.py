"""How catalog items and search results look in API answers: their fields and URLs, in one place."""

from __future__ import annotations

import numpy as np
from fastapi import Response

from lookalike.api.deps import NO_FILTER, Dedupe, Narrowing
from lookalike.api.schemas import Item, Result, SearchResponse, json_response
from lookalike.api.state import AppState
from lookalike.catalog.repository import ItemRecord
from lookalike.metrics import stage
from lookalike.search import SearchHit, SearchResult


def image_url(item: int, thumbnail: bool = False) -> str:
    return f"/api/items/{item}/image{'?size=thumb' if thumbnail else ''}"


def to_item(record: ItemRecord) -> Item:
    return Item(id=record.id, category=record.category, item_id=record.item_id, metadata=record.metadata,
                model_version=record.model_version, image_url=image_url(record.id),
                thumbnail_url=image_url(record.id, thumbnail=True), sku=record.sku)


def to_results(state: AppState, hits: list[SearchHit]) -> list[Result]:
    # calibrated on cosine similarities: the colour penalty in the score is not evidence of another kind
    confidence = state.confidence(np.array([h.similarity for h in hits], np.float64))
    return [
        Result(id=h.id, rank=h.rank, score=h.score, similarity=h.similarity, confidence=round(float(c), 4),
               category=h.category, item_id=h.item_id, image_url=image_url(h.id),
               thumbnail_url=image_url(h.id, thumbnail=True), metadata=h.metadata, colour_match=h.colour_match,
               sku=h.sku, product=h.product)
        for h, c in zip(hits, confidence, strict=True)
    ]


def search_answer(state: AppState, shopper: str | None, label: str, k: int, category: str | None, dedupe: Dedupe,
                  found: SearchResult, narrowed: Narrowing = NO_FILTER, facets: bool = False, *,
                  taste: bool = True) -> Response:
    """Record the search (see :class:`~lookalike.history.SearchHistory`) and answer it, with the filter's count of
    matching items and, when asked, their facets."""
    with stage("record"):
        query_id = state.history.record(label, k, category, found, shopper, taste)
    matching = None if narrowed.allowed is None else int(len(narrowed.allowed))
    return json_response(SearchResponse(
        query_id=query_id, took_ms=round(found.took_ms, 2), k=k, category=category, dedupe=dedupe.asked,
        results=to_results(state, found.hits), filter=narrowed.filter.key if narrowed.filter else None,
        matching=matching, facets=state.filters.facets(narrowed.allowed) if facets else None))

"""Response bodies of the REST API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every error response: a human-readable message, plus the failing fields for a validation error."""

    detail: str = Field(description="What was wrong, in words.")
    errors: list[dict[str, Any]] | None = Field(None, description="Per-field problems (422 only).")


class Result(BaseModel):
    id: int
    rank: int
    score: float = Field(description="Cosine similarity to the query, -1..1.")
    confidence: float = Field(description="Calibrated 0..1: probability a result this similar is the same kind.")
    category: str | None
    item_id: str | None
    image_url: str
    thumbnail_url: str
    metadata: dict[str, Any] = {}


class SearchResponse(BaseModel):
    query_id: int
    took_ms: float
    k: int
    category: str | None
    results: list[Result]


class Item(BaseModel):
    id: int
    category: str | None
    item_id: str | None
    metadata: dict[str, Any]
    model_version: str
    image_url: str
    thumbnail_url: str


class AddItemsResponse(BaseModel):
    items: list[Item]
    failures: list[dict[str, str]]


class Category(BaseModel):
    name: str
    count: int


class HistoryEntry(BaseModel):
    id: int
    created_at: str
    query: str
    k: int
    category: str | None
    took_ms: float
    results: list[dict[str, Any]]


class Stats(BaseModel):
    items: int
    categories: int
    index: dict[str, Any]
    backbone: str
    head: str
    dim: int
    searches: int
    confidence: dict[str, Any]


class Health(BaseModel):
    status: str
    items: int
    model_version: str

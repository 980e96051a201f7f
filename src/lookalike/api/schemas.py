"""Response bodies of the REST API."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Response
from pydantic import BaseModel, Field, model_validator


def json_response(model: BaseModel) -> Response:
    """``model`` as a JSON response, serialized once. A route that returns the model itself has FastAPI dump it,
    validate the dump against the route's response_model (in a worker thread, for a sync route) and encode it
    again: about 0.5 ms per search against 0.005 ms here. The route keeps ``response_model`` for its schema."""
    return Response(model.model_dump_json(), media_type="application/json")


class ErrorBody(BaseModel):
    """Every error response: a human-readable message, plus the failing fields for a validation error."""

    detail: str = Field(description="What was wrong, in words.")
    errors: list[dict[str, Any]] | None = Field(None, description="Per-field problems (422 only).")


ERROR_DESCRIPTIONS = {
    400: "Unreadable upload or bad request", 401: "Missing bearer token",
    403: "Wrong token, or catalog changes disabled", 404: "No such item", 409: "Empty catalog or model mismatch",
    410: "Item image file gone", 413: "Upload over the size limit", 422: "Invalid parameters",
    503: "Backbone or vector store unavailable",
}
READ = (422, 503)  # every route can be sent bad parameters, and every route reaches the model or the index
UPLOAD = (400, 413)
WRITE = (401, 403)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of the errors a route can answer."""
    return {code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]} for code in sorted(set(codes))}


class Result(BaseModel):
    id: int
    rank: int
    score: float = Field(description="What ranked the result: its cosine similarity to the query, -1..1, less a "
                         "colour penalty where colour ranked the results (see `colour_match`).")
    similarity: float = Field(description="Cosine similarity to the query, -1..1.")
    confidence: float = Field(description="Calibrated 0..1: the mean of the probabilities that a result this similar "
                              "is the same kind of garment and that it is the very item (about 1: this item; about "
                              "0.5: the same kind).")
    category: str | None
    item_id: str | None
    image_url: str
    thumbnail_url: str
    metadata: dict[str, Any] = {}
    colour_match: float | None = Field(None, description="How alike the colours of the result and the query are, "
                                       "0..1, where the catalog is in colour and colour ranked the results (the "
                                       "score then includes it, the similarity does not); null otherwise.")
    sku: str | None = Field(None, description="The product the item shows (catalogs synced from a feed).")
    product: dict[str, Any] | None = Field(None, description="That product's attributes (title, price, currency, "
                                           "brand, color, size, availability, link, ...), as its feed gives them.")


class FacetValue(BaseModel):
    value: str | bool
    count: int


class FacetRange(BaseModel):
    from_: float | None = Field(alias="from", description="Inclusive lower bound (null: none).")
    to: float | None = Field(description="Exclusive upper bound (null: none).")
    count: int

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class Facets(BaseModel):
    values: dict[str, list[FacetValue]] = Field(description="Items per value of each attribute with few values.")
    ranges: dict[str, list[FacetRange]] = Field(description="Items per range of each numeric or date attribute.")


class FacetsResponse(Facets):
    matching: int = Field(description="Items the filter matches (all items without one).")
    filter: str | None = None
    kinds: dict[str, str] = Field(description="Each attribute's kind: text, number, bool or date.")


class SearchResponse(BaseModel):
    query_id: int = Field(description="The search's id: refine it with POST /api/search/refine.")
    took_ms: float
    k: int
    category: str | None
    dedupe: bool = Field(False, description="Near-duplicates were collapsed.")
    results: list[Result]
    filter: str | None = Field(None, description="The filter applied, as canonical JSON.")
    matching: int | None = Field(None, description="How many catalog items the filter matches.")
    facets: Facets | None = Field(None, description="Facet counts of the matching items, when asked.")


class RefineRequest(BaseModel):
    query_id: int = Field(description="The query_id of an earlier search (or refinement).")
    liked: list[int] = Field(default_factory=list, max_length=100, description="Ids of results to move toward.")
    disliked: list[int] = Field(default_factory=list, max_length=100, description="Ids of results to move away from.")
    k: int = Field(5, ge=1, le=1000)
    category: str | None = None
    dedupe: bool = False
    group_by: Literal["product"] | None = Field(None, description="`product`: one result per product.")
    filter: dict[str, Any] | None = Field(None, description="Only items meeting these conditions (as in search).")
    facets: bool = False

    @model_validator(mode="after")
    def some_feedback(self) -> RefineRequest:
        if not self.liked and not self.disliked:
            raise ValueError("mark at least one result as liked or disliked")
        return self


class Item(BaseModel):
    id: int
    category: str | None
    item_id: str | None
    metadata: dict[str, Any]
    model_version: str
    image_url: str
    thumbnail_url: str
    sku: str | None = Field(None, description="The product the item shows (catalogs synced from a feed).")


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
    products: int = Field(0, description="Products (by SKU) from feeds and PUT /api/products.")
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
    worker: int = Field(description="Process id of the server worker that answered.")


class DuplicateCalibration(BaseModel):
    threshold: float = Field(description="The default threshold, calibrated on this catalog.")
    separable: bool = Field(description="Whether the rule (similarity, hash and aligned pixels) finds at least 95% "
                            "of the calibration's re-encoded, resized and cropped copies.")
    copy_low: float = Field(description="5th percentile similarity of re-encoded/resized/cropped copies.")
    distinct_high: float = Field(description="99th percentile similarity of an item to its nearest other item.")
    copies: dict[str, float]
    sample: int
    embedding_separable: bool = Field(False, description="Whether the similarity alone tells copies from different "
                                      "items (else the pixels decide below the threshold).")
    copies_found: float = Field(0.0, description="The share of the calibration's copies that the rule finds.")
    nearest_matched: float = Field(0.0, description="The share of sampled items whose nearest other item the "
                                   "aligned pixels match (copies already in the catalog, or look-alikes).")


class DuplicateGroup(BaseModel):
    items: list[Item]
    min_score: float = Field(description="The weakest similarity that joined the group.")
    max_score: float


class DuplicatesResponse(BaseModel):
    threshold: float
    calibration: DuplicateCalibration
    groups_total: int
    items_total: int = Field(description="Items in some group.")
    took_ms: float
    groups: list[DuplicateGroup]


class Recommendations(BaseModel):
    shopper: str
    searches: int = Field(description="Searches in the shopper's taste.")
    likes: int = Field(description="Liked items in the shopper's taste.")
    took_ms: float
    results: list[Result]

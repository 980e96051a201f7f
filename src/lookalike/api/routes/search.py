"""POST /api/search (images and/or catalog items as examples -> ranked similar items) and POST /api/search/refine."""

from __future__ import annotations

import re
import time

import numpy as np
from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.routing import Match
from starlette.types import Scope

from lookalike.api.deps import (
    SHOPPER_PARAMETERS,
    Dedupe,
    Narrowing,
    SearchForm,
    SearchOptions,
    Shopper,
    State,
    dedupe_for,
    get_state,
    narrowing,
    shopper_of,
    validated,
)
from lookalike.api.presenters import search_answer
from lookalike.api.schemas import READ, UPLOAD, RefineRequest, SearchResponse, error_responses
from lookalike.api.state import AppState
from lookalike.api.uploads import read_upload
from lookalike.catalog.repository import StoredQuery
from lookalike.refine import rocchio
from lookalike.search import check_category

router = APIRouter(prefix="/api", tags=["search"])


def parse_item_ids(text: str | None) -> list[int]:
    """``"3, 17 42"`` -> [3, 17, 42]; 422 for anything else."""
    tokens = [t for t in re.split(r"[\s,]+", text or "") if t]
    if not all(t.isdigit() for t in tokens):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"item_ids must be catalog ids separated by commas, got {text!r}")
    return list(dict.fromkeys(int(t) for t in tokens))


class ImageBodyRoute(APIRoute):
    """A route that takes only requests whose body is an image (``Content-Type: image/...``), so the same path and
    method can also take multipart forms in another route."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and not Headers(scope=scope).get("content-type", "").startswith("image/"):
            return Match.NONE, {}
        return match, child


async def search_image_body(request: Request) -> Response:
    """One query image as the whole request body; the options in the query string. No form to parse."""
    started = time.perf_counter()
    state, shopper = await get_state(request), shopper_of(request)
    options = validated(SearchOptions, request.query_params, "query")
    limit = int(state.settings.max_upload_mb * 2**20)
    image = await request.body()
    if len(image) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"upload is larger than the {limit // 2**20} MB limit")
    if not image:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the request body is empty: send the image")
    return await run_in_threadpool(answer_examples, state, shopper, options, [image], ["upload"], [], started)


router.add_api_route("/search", search_image_body, methods=["POST"], include_in_schema=False,
                     route_class_override=ImageBodyRoute)

FILES_HELP = "Query image(s) (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC); several = like all of them."
FORM_SCHEMA = SearchForm.model_json_schema()
SEARCH_BODIES = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {**FORM_SCHEMA, "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}, "description": FILES_HELP},
        **FORM_SCHEMA["properties"]}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}, "parameters": SHOPPER_PARAMETERS}


@router.post("/search", response_model=SearchResponse, summary="Find catalog items similar to one or more examples",
             responses=error_responses(*READ, *UPLOAD, 404, 409), openapi_extra=SEARCH_BODIES)
async def search(request: Request) -> Response:
    """The query is the normalized mean embedding of every example (files and items), or an earlier search's.

    One image can also be the whole request body (`Content-Type: image/jpeg`, say), with `k`, `category`,
    `dedupe`, `group_by`, `filter` and `facets` in the query string: the same answer, without a form to parse.

    The form is parsed and validated here in one step (no FastAPI dependency or parameter to resolve per request),
    and the rest runs in one thread of the pool."""
    started = time.perf_counter()
    state, shopper = await get_state(request), shopper_of(request)
    async with request.form() as form:
        options = validated(SearchForm, form, "body")
        files = [upload for upload in form.getlist("file") if isinstance(upload, UploadFile)]
        if len(files) != len(form.getlist("file")):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "`file` must be an uploaded file")
        examples = parse_item_ids(options.item_ids)
        if options.query_id is not None:
            if files or examples:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give either examples or a query_id")
            return await run_in_threadpool(answer_stored, state, shopper, options, options.query_id, started)
        if not files and not examples:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give a query image `file` (or several), "
                                "or `item_ids` of catalog items")
        return await run_in_threadpool(read_and_answer, state, shopper, options, files, examples, started)


def read_and_answer(state: AppState, shopper: str | None, options: SearchOptions, files: list[UploadFile],
                    examples: list[int], started: float) -> Response:
    limit = int(state.settings.max_upload_mb * 2**20)
    images = [read_upload(upload, limit) for upload in files]
    names = [(upload.filename or "upload")[:100] for upload in files]
    return answer_examples(state, shopper, options, images, names, examples, started)


def answer_examples(state: AppState, shopper: str | None, options: SearchOptions, images: list[bytes],
                    names: list[str], examples: list[int], started: float) -> Response:
    """The search for these images (``names``: their file names) and catalog items, recorded and answered (on a
    thread: it runs the model)."""
    labels = names if len(images) == 1 else [f"image {i} ({name})" for i, name in enumerate(names, 1)]
    category, dedupe, narrowed = narrowed_by(state, options)
    vector, palette = state.service.example_query(images, examples, labels)
    found = state.service.search_vectors(vector, options.k, category, started=started,
                                         dedupe_threshold=dedupe.threshold, palettes=palette,
                                         by_product=options.group_by == "product", allowed=narrowed.allowed)[0]
    names = names + [f"item {i}" for i in examples]
    label = names[0] if len(names) == 1 else f"{len(names)} examples: {', '.join(names)}"
    return search_answer(state, shopper, label, options.k, category, dedupe, found, narrowed, options.facets)


def answer_stored(state: AppState, shopper: str | None, options: SearchOptions, query_id: int, started: float,
                  ) -> Response:
    """The search again with an earlier search's query (a new filter, say); not counted in the shopper's taste."""
    category, dedupe, narrowed = narrowed_by(state, options)
    stored = stored_query(state, query_id)
    found = state.service.search_vectors(
        stored.vector.reshape(1, -1), options.k, category, started=started, dedupe_threshold=dedupe.threshold,
        palettes=None if stored.palette is None else stored.palette.reshape(1, -1),
        by_product=options.group_by == "product", allowed=narrowed.allowed)[0]
    label = f"search {query_id} again" + (f", filtered {narrowed.filter.key}" if narrowed.filter else "")
    return search_answer(state, shopper, label, options.k, category, dedupe, found, narrowed, options.facets,
                         taste=False)


def narrowed_by(state: AppState, options: SearchOptions) -> tuple[str | None, Dedupe, Narrowing]:
    """The options' category (422 for one the catalog lacks), duplicate threshold and filter."""
    return (check_category(state.engine.store, options.category), dedupe_for(state, options.dedupe),
            narrowing(state, options.filter))


def stored_query(state: AppState, query_id: int) -> StoredQuery:
    """An earlier search's query; 404 for an unknown one, 409 when it was made with another model."""
    stored = state.history.stored_query(query_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no search with id {query_id}")
    if stored.model_version != state.engine.model_version:
        raise HTTPException(status.HTTP_409_CONFLICT, f"search {query_id} was made with another model; search again")
    return stored


@router.post("/search/refine", response_model=SearchResponse,
             summary="Search again, moved toward the liked results and away from the disliked ones",
             responses=error_responses(*READ, 400, 404, 409))
def refine(state: State, shopper: Shopper, body: RefineRequest) -> Response:
    """Rocchio's update of the stored query of ``query_id`` (no new upload); returns a new query id to refine. The
    disliked items are left out of the results."""
    started = time.perf_counter()
    stored = stored_query(state, body.query_id)
    narrowed = narrowing(state, body.filter)
    both = set(body.liked) & set(body.disliked)
    if both:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"items both liked and disliked: {', '.join(map(str, sorted(both)))}")
    dim = state.engine.head.dim
    liked = state.service.item_vectors(body.liked) if body.liked else np.zeros((0, dim), np.float32)
    disliked = state.service.item_vectors(body.disliked) if body.disliked else np.zeros((0, dim), np.float32)
    vector = rocchio(stored.vector, liked, disliked)
    category, dedupe = check_category(state.engine.store, body.category), dedupe_for(state, body.dedupe)
    found = state.service.search_vectors(vector, body.k, category, exclude=set(body.disliked), started=started,
                                         dedupe_threshold=dedupe.threshold, by_product=body.group_by == "product",
                                         allowed=narrowed.allowed)[0]
    if shopper:
        state.history.flush()  # the searches before it count first
        state.taste.record_feedback(shopper, body.liked, body.disliked)
    label = f"refined search {body.query_id} (+{len(body.liked)} / -{len(body.disliked)})"
    return search_answer(state, shopper, label, body.k, category, dedupe, found, narrowed, body.facets)

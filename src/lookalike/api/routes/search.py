"""POST /api/search (images and/or catalog items as examples -> ranked similar items) and POST /api/search/refine."""

from __future__ import annotations

import re
import time
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Response, UploadFile, status

from lookalike.api.deps import FormCategory, FormDedupe, FormGroupBy, Shopper, State, dedupe_for
from lookalike.api.presenters import search_answer
from lookalike.api.schemas import READ, UPLOAD, RefineRequest, SearchResponse, error_responses
from lookalike.api.uploads import read_upload
from lookalike.refine import rocchio
from lookalike.search import MAX_K, check_category

router = APIRouter(prefix="/api", tags=["search"])


def parse_item_ids(text: str | None) -> list[int]:
    """``"3, 17 42"`` -> [3, 17, 42]; 422 for anything else."""
    tokens = [t for t in re.split(r"[\s,]+", text or "") if t]
    if not all(t.isdigit() for t in tokens):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"item_ids must be catalog ids separated by commas, got {text!r}")
    return list(dict.fromkeys(int(t) for t in tokens))


@router.post("/search", response_model=SearchResponse, summary="Find catalog items similar to one or more examples",
             responses=error_responses(*READ, *UPLOAD, 404, 409))
def search(
    state: State,
    shopper: Shopper,
    category: FormCategory,
    dedupe: FormDedupe,
    file: Annotated[list[UploadFile] | None, File(
        description="Query image(s) (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC); several = like all of them.")] = None,
    item_ids: Annotated[str | None, Form(description="Catalog ids of example items, comma-separated.")] = None,
    k: Annotated[int, Form(ge=1, le=MAX_K, description="How many results.")] = 5,
    group_by: FormGroupBy = None,
) -> Response:
    """The query is the normalized mean embedding of every example (files and items)."""
    started = time.perf_counter()
    files = file or []
    examples = parse_item_ids(item_ids)
    if not files and not examples:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give a query image `file` (or several), "
                            "or `item_ids` of catalog items")
    limit = int(state.settings.max_upload_mb * 2**20)
    images = [read_upload(upload, limit) for upload in files]
    names = [(u.filename or "upload")[:100] for u in files]
    labels = names if len(files) == 1 else [f"image {i} ({name})" for i, name in enumerate(names, 1)]
    vector = state.service.example_vector(images, examples, labels)
    palette = state.service.example_palette(images, examples)
    found = state.service.search_vectors(vector, k, category, started=started, dedupe_threshold=dedupe.threshold,
                                         palettes=palette, by_product=group_by == "product")[0]
    names += [f"item {i}" for i in examples]
    label = names[0] if len(names) == 1 else f"{len(names)} examples: {', '.join(names)}"
    return search_answer(state, shopper, label, k, category, dedupe, found)


@router.post("/search/refine", response_model=SearchResponse,
             summary="Search again, moved toward the liked results and away from the disliked ones",
             responses=error_responses(*READ, 400, 404, 409))
def refine(state: State, shopper: Shopper, body: RefineRequest) -> Response:
    """Rocchio's update of the stored query of ``query_id`` (no new upload); returns a new query id to refine. The
    disliked items are left out of the results."""
    started = time.perf_counter()
    stored = state.engine.catalog.search_vector(body.query_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no search with id {body.query_id}")
    if stored[0] != state.engine.model_version:
        raise HTTPException(status.HTTP_409_CONFLICT, f"search {body.query_id} was made with another model; "
                            "search again")
    both = set(body.liked) & set(body.disliked)
    if both:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"items both liked and disliked: {', '.join(map(str, sorted(both)))}")
    dim = state.engine.head.dim
    liked = state.service.item_vectors(body.liked) if body.liked else np.zeros((0, dim), np.float32)
    disliked = state.service.item_vectors(body.disliked) if body.disliked else np.zeros((0, dim), np.float32)
    vector = rocchio(stored[1], liked, disliked)
    category, dedupe = check_category(state.engine.store, body.category), dedupe_for(state, body.dedupe)
    found = state.service.search_vectors(vector, body.k, category, exclude=set(body.disliked), started=started,
                                         dedupe_threshold=dedupe.threshold, by_product=body.group_by == "product")[0]
    if shopper:
        state.taste.record_feedback(shopper, body.liked, body.disliked)
    label = f"refined search {body.query_id} (+{len(body.liked)} / -{len(body.disliked)})"
    return search_answer(state, shopper, label, body.k, category, dedupe, found)

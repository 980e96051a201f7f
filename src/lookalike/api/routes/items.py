"""Catalog items: read, image, similar items; add and delete (token required)."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from lookalike.api.deps import QueryCategory, QueryDedupe, QueryFilter, QueryGroupBy, Shopper, State, WriteAccess
from lookalike.api.presenters import search_answer, to_item
from lookalike.api.schemas import READ, UPLOAD, WRITE, AddItemsResponse, Item, SearchResponse, error_responses
from lookalike.api.uploads import read_upload
from lookalike.catalog.repository import ItemRecord
from lookalike.data.sources import CatalogEntry
from lookalike.errors import ImageDecodeError, NotFoundError
from lookalike.hashing import content_key
from lookalike.ingest import ingest
from lookalike.io.files import write_atomically
from lookalike.io.images import SUPPORTED_EXTENSIONS, decode_image, thumbnail_jpeg
from lookalike.search import MAX_K

router = APIRouter(prefix="/api/items", tags=["items"])
THUMB_SIZE = 256
ItemId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="The item's catalog id.")]  # SQLite's range


def _record(state: State, item: int) -> ItemRecord:
    record = state.engine.catalog.get_item(item)
    if record is None:
        raise NotFoundError(f"no item with id {item}")
    return record


@router.get("/{item}", response_model=Item, responses=error_responses(*READ, 404))
def get_item(state: State, item: ItemId) -> Item:
    return to_item(_record(state, item))


@router.get("/{item}/image", response_class=Response,
            responses={200: {"content": {"image/*": {}}}, **error_responses(*READ, 404, 410)})
def get_image(state: State, item: ItemId, size: Literal["full", "thumb"] = "full") -> Response:
    """The item's image, by catalog id only (never by a client-given path)."""
    record = _record(state, item)
    path = Path(record.path)
    if not path.is_file():
        raise HTTPException(status.HTTP_410_GONE, f"the image file of item {item} is no longer there")
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    if size == "full":
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media, headers=headers)
    thumb = state.settings.home / "thumbs" / f"{record.content_hash}-{THUMB_SIZE}.jpg"
    if not thumb.is_file():
        thumb.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(thumb, thumbnail_jpeg(path, THUMB_SIZE))  # concurrent writers: the last one wins, whole
    return FileResponse(thumb, media_type="image/jpeg", headers=headers)


@router.get("/{item}/similar", response_model=SearchResponse, responses=error_responses(*READ, 404, 409))
def similar(state: State, shopper: Shopper, item: ItemId, category: QueryCategory, dedupe: QueryDedupe,
            narrowed: QueryFilter, k: Annotated[int, Query(ge=1, le=MAX_K)] = 5, group_by: QueryGroupBy = None,
            facets: bool = False) -> Response:
    """Items most like a catalog item ("more like this"), the item itself and its product's other images excluded."""
    found = state.service.similar_to_item(item, k, category, dedupe.threshold, by_product=group_by == "product",
                                          allowed=narrowed.allowed)
    return search_answer(state, shopper, f"more like item {item}", k, category, dedupe, found, narrowed, facets)


@router.post("", response_model=AddItemsResponse, status_code=status.HTTP_201_CREATED, dependencies=[WriteAccess],
             responses=error_responses(*READ, *UPLOAD, *WRITE))
def add_items(
    state: State,
    files: Annotated[list[UploadFile], File(description="One or more images.")],
    category: Annotated[str | None, Form()] = None,
    item_id: Annotated[str | None, Form(description="Product id shared by the images.")] = None,
    metadata: Annotated[str | None, Form(description="A JSON object kept with each item.")] = None,
) -> AddItemsResponse:
    """Add images to the catalog; searchable as soon as this returns."""
    try:
        extra = json.loads(metadata) if metadata else {}
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"metadata is not valid JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "metadata must be a JSON object")
    limit = int(state.settings.max_upload_mb * 2**20)
    uploads_dir = state.settings.home / "uploads"
    uploads_dir.mkdir(parents=True, exist_ok=True)
    entries, failures = [], []
    for upload in files:
        data = read_upload(upload, limit)
        name = (upload.filename or "upload")[:200]
        try:
            decode_image(data, max_pixels=state.settings.max_image_pixels)  # refuse bad files before storing
        except ImageDecodeError as exc:
            failures.append({"file": name, "reason": str(exc)})
            continue
        suffix = Path(name).suffix.lower()
        path = uploads_dir / f"{content_key(data)}{suffix if suffix in SUPPORTED_EXTENSIONS else '.img'}"
        if not path.exists():
            write_atomically(path, data)
        entries.append(CatalogEntry(path, category or None, item_id or None, {"filename": name, **extra}))
    if not entries:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "; ".join(f"{f['file']}: {f['reason']}" for f in failures))
    with state.changing():
        report = ingest(state.engine, entries)
    failures += [{"file": Path(p).name, "reason": r} for p, r in report.failures]
    added = state.engine.catalog.known_paths(str(e.path) for e in entries)
    records = [r for r in state.engine.catalog.get_items_by_paths(sorted(added))]
    return AddItemsResponse(items=[to_item(r) for r in records], failures=failures)


@router.delete("/{item}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WriteAccess],
               responses=error_responses(*READ, *WRITE, 404))
def delete_item(state: State, item: ItemId) -> Response:
    """Remove an item; it is gone from search results as soon as this returns."""
    with state.changing():
        _record(state, item)
        # Index first: a search meanwhile must not get an id whose record is gone (it would return fewer than k).
        state.engine.store.remove(np.array([item]))
        state.engine.catalog.delete_items([item])
        state.engine.save()
    return Response(status_code=status.HTTP_204_NO_CONTENT)

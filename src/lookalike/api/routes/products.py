"""Products by SKU (read, upsert, delete) and feed syncs as background jobs; writes need the token."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from lookalike.api.deps import State, WriteAccess
from lookalike.api.presenters import image_url
from lookalike.api.schemas import READ, UPLOAD, WRITE, error_responses
from lookalike.api.state import AppState
from lookalike.api.uploads import read_upload
from lookalike.bootstrap import feed_sync
from lookalike.catalog.products import ProductRecord
from lookalike.data.feeds import MAX_IMAGES, MAX_SKU, Feed, FeedProduct, read_feed
from lookalike.errors import LookalikeError
from lookalike.hashing import content_key
from lookalike.io.blobs import ImageStore
from lookalike.io.fetch import Fetcher
from lookalike.io.images import sniff_image
from lookalike.sync import SyncReport, load_feed

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["products"])
Sku = Annotated[str, Path(min_length=1, max_length=MAX_SKU, description="The merchant's product id.")]


class ProductImage(BaseModel):
    id: int = Field(description="The catalog item showing this image.")
    source_url: str | None = Field(description="Where the image was downloaded from (null for an upload).")
    image_url: str
    thumbnail_url: str


class ProductResponse(BaseModel):
    sku: str
    category: str | None
    attributes: dict[str, Any]
    images: list[ProductImage]
    updated_at: str | None


class ProductUpsert(BaseModel):
    category: str | None = Field(None, max_length=200)
    attributes: dict[str, Any] = Field(default_factory=dict, description="Title, price, brand, colour, size, ...")
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES, description="Image URLs, the main one first.")


class SyncRequest(BaseModel):
    url: str = Field(description="The feed's http(s) URL.", max_length=4000)
    map: dict[str, str] = Field(default_factory=dict, description="Feed column -> field (sku, images, price, ...).")
    prune: bool = Field(False, description="Remove the products the feed no longer has.")
    force: bool = Field(False, description="Prune even when that removes more than 20% of the products.")


class JobResponse(BaseModel):
    id: str
    kind: str
    state: str = Field(description="queued, running, done or failed.")
    detail: str
    counts: dict[str, Any] = Field(description="added, reimaged, updated, unchanged, removed, failed, downloaded, ...")
    errors: list[dict[str, Any]] = Field(description="The first failures: row, sku, url and reason.")
    created_at: str
    updated_at: str


def _present(record: ProductRecord) -> ProductResponse:
    return ProductResponse(
        sku=record.sku, category=record.category, attributes=record.attributes,
        images=[ProductImage(id=r.id, source_url=r.image_url if (r.image_url or "").startswith(("http://", "https://"))
                             else None, image_url=image_url(r.id), thumbnail_url=image_url(r.id, thumbnail=True))
                for r in record.items],
        updated_at=record.updated_at.isoformat() if record.updated_at else None)


def _product(state: AppState, sku: str) -> ProductRecord:
    found = state.engine.catalog.products.get([sku]).get(sku)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no product with SKU {sku!r}")
    return found


@router.get("/products/{sku}", response_model=ProductResponse, responses=error_responses(*READ, 404))
def get_product(state: State, sku: Sku) -> ProductResponse:
    """A product's attributes and its images (each a catalog item)."""
    return _present(_product(state, sku))


UPSERT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": ProductUpsert.model_json_schema()},
    "multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "attributes": {"type": "string", "description": "A JSON object."},
        "category": {"type": "string"}}}}}}}


@router.put("/products/{sku}", response_model=ProductResponse, dependencies=[WriteAccess],
            responses=error_responses(*READ, *UPLOAD, *WRITE), openapi_extra=UPSERT_BODY)
async def put_product(state: State, sku: Sku, request: Request) -> ProductResponse:
    """Add or replace a product: JSON ``{"attributes", "category", "images": [URLs]}``, or a multipart form of image
    ``files`` with ``attributes`` (a JSON object) and ``category``. Searchable as it is when this returns."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        product = await _uploaded_product(state, sku, request)
    else:
        try:
            body = ProductUpsert.model_validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _first_error(exc)) from None
        product = Feed([FeedProduct(sku, body.images, body.category, body.attributes)], [], "api")
    report = await run_in_threadpool(_sync, state, product)
    if report.failed:
        reasons = "; ".join(f"{f.get('url') or sku}: {f['reason']}" for f in report.failures[:5])
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no image of the product could be read: {reasons}")
    return _present(_product(state, sku))


async def _uploaded_product(state: AppState, sku: str, request: Request) -> Feed:
    form = await request.form()
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
    if not files:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give image `files` (or a JSON body with URLs)")
    try:
        attributes = json.loads(str(form.get("attributes") or "{}"))
    except (ValueError, RecursionError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"attributes is not valid JSON: {exc}") from None
    if not isinstance(attributes, dict):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "attributes must be a JSON object")
    store, limit, paths = ImageStore(state.settings.images_dir), int(state.settings.max_upload_mb * 2**20), []
    for upload in files[:MAX_IMAGES]:
        data = read_upload(upload, limit)  # type: ignore[arg-type]
        try:
            paths.append(str(store.put(data, content_key(data), sniff_image(data))))
        except LookalikeError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{upload.filename or 'upload'}: {exc}") from None
    category = str(form.get("category") or "") or None
    return Feed([FeedProduct(sku, paths, category, attributes)], [], "api", local_files=True)


def _sync(state: AppState, feed: Feed) -> SyncReport:
    with state.changing(), feed_sync(state.settings, state.engine) as syncer:
        return syncer.run(feed)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"


@router.delete("/products/{sku}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WriteAccess],
               responses=error_responses(*READ, *WRITE, 404))
def delete_product(state: State, sku: Sku) -> Response:
    """Remove a product and its images; gone from search results when this returns."""
    with state.changing(), feed_sync(state.settings, state.engine) as syncer:
        _product(state, sku)
        syncer.remove([sku])
        state.engine.save()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


SYNC_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": SyncRequest.model_json_schema()},
    "multipart/form-data": {"schema": {"type": "object", "required": ["feed"], "properties": {
        "feed": {"type": "string", "format": "binary", "description": "The feed file."},
        "map": {"type": "string", "description": "A JSON object: feed column -> field."},
        "prune": {"type": "boolean"}, "force": {"type": "boolean"}}}}}}}


@router.post("/sync", response_model=JobResponse, status_code=status.HTTP_202_ACCEPTED, dependencies=[WriteAccess],
             responses=error_responses(*READ, *UPLOAD, *WRITE), openapi_extra=SYNC_BODY)
async def start_sync(state: State, request: Request) -> JobResponse:
    """Sync the catalog with a feed (its URL in JSON, or the file in a multipart form) in the background; follow
    it at ``GET /api/jobs/{id}``. An uploaded feed's images must be http(s) URLs."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("feed")
        if not isinstance(upload, UploadFile):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give the feed file as `feed`")
        data = read_upload(upload, int(state.settings.max_upload_mb * 2**20))  # type: ignore[arg-type]
        try:
            mapping = json.loads(str(form.get("map") or "{}"))
            if not isinstance(mapping, dict):
                raise ValueError("not a JSON object")
            feed = read_feed(data, upload.filename or "", {str(k): str(v) for k, v in mapping.items()})
        except (ValueError, LookalikeError) as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        source = upload.filename or "upload"
        options = {name: str(form.get(name, "")).lower() == "true" for name in ("prune", "force")}
        run = _job_runner(state, lambda _fetcher: feed, options)
    else:
        try:
            body = SyncRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _first_error(exc)) from None
        if not body.url.startswith(("http://", "https://")):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "url must be an http(s) URL")
        source, options = body.url, {"prune": body.prune, "force": body.force}
        run = _job_runner(state, lambda fetcher: load_feed(body.url, fetcher, body.map), options)
    job_id = state.engine.catalog.jobs.create("sync", f"feed {source[:500]}")
    threading.Thread(target=run, args=(job_id,), name=f"lookalike-sync-{job_id[:8]}", daemon=True).start()
    return _job(state, job_id)


def _job_runner(state: AppState, feed_of: Callable[[Fetcher], Feed], options: dict[str, bool],
                ) -> Callable[[str], None]:
    def run(job_id: str) -> None:
        jobs = state.engine.catalog.jobs
        try:
            with state.changing(), feed_sync(state.settings, state.engine) as syncer:
                jobs.update(job_id, state="running")
                feed = feed_of(syncer.fetcher)
                report = syncer.run(feed, progress=lambda _d, _t, r: jobs.update(job_id, counts=r.counts()),
                                    **options)
            jobs.update(job_id, state="done", counts=report.counts(), errors=report.failures)
        except LookalikeError as exc:
            jobs.update(job_id, state="failed", detail=str(exc))
        except Exception as exc:  # a background thread has no one else to tell
            log.exception("sync job %s failed", job_id)
            jobs.update(job_id, state="failed", detail=f"internal error: {type(exc).__name__}: {exc}")

    return run


def _job(state: AppState, job_id: str) -> JobResponse:
    job = state.engine.catalog.jobs.get(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job with id {job_id!r}")
    return JobResponse(id=job.id, kind=job.kind, state=job.state, detail=job.detail, counts=job.counts,
                       errors=job.errors, created_at=job.created_at.isoformat(), updated_at=job.updated_at.isoformat())


@router.get("/jobs/{job_id}", response_model=JobResponse, responses=error_responses(*READ, 404))
def get_job(state: State, job_id: Annotated[str, Path(max_length=64)]) -> JobResponse:
    """A background job's state, counts and first errors (from any server worker)."""
    return _job(state, job_id)

"""The FastAPI application: routes under /api, the dashboard at /, models loaded once in the lifespan."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from lookalike import __version__
from lookalike.api.admission import Admission, TokenBuckets
from lookalike.api.limits import BodySizeLimit
from lookalike.api.routes import discover, items, meta, products, search
from lookalike.api.state import AppState
from lookalike.api.telemetry import RequestTelemetry, configure_logging
from lookalike.bootstrap import open_engine
from lookalike.config import Settings, get_settings
from lookalike.engine import Engine
from lookalike.errors import (
    BackboneError,
    CatalogSourceError,
    EmptyCatalogError,
    FetchError,
    ImageDecodeError,
    ImageTooLargeError,
    InvalidRequestError,
    LookalikeError,
    ModelMismatchError,
    NotFoundError,
    VectorStoreError,
)
from lookalike.metrics import ERRORS, INDEX_ITEMS, exposition
from lookalike.threads import limit_native_threads

log = logging.getLogger(__name__)
MULTIPART_OVERHEAD = 64 * 1024  # form fields and part headers around the file itself
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
SWAGGER_URL = "/static/vendor/swagger-ui"

STATUS_OF: list[tuple[type[LookalikeError], int]] = [
    (ImageTooLargeError, status.HTTP_413_CONTENT_TOO_LARGE),
    (ImageDecodeError, status.HTTP_400_BAD_REQUEST),
    (InvalidRequestError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (CatalogSourceError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (FetchError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (EmptyCatalogError, status.HTTP_409_CONFLICT),
    (ModelMismatchError, status.HTTP_409_CONFLICT),
    (BackboneError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (VectorStoreError, status.HTTP_503_SERVICE_UNAVAILABLE),
]


def _plotly_js() -> Path | None:
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def create_app(settings: Settings | None = None, engine: Engine | None = None, *, reconcile: bool = True) -> FastAPI:
    """The application; ``settings`` default to the environment's; ``engine`` (already opened, e.g. so the CLI
    can report a corrupt index before serving) is opened in the lifespan when not given, and then reconciled
    with the catalog unless ``reconcile`` is False."""
    settings = settings or get_settings()
    prepared = engine

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.search_threads:
            limit_native_threads(settings.search_threads)
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        engine = prepared or open_engine(settings, reconcile=reconcile)
        state = app.state.lookalike = AppState.open(settings, engine)
        log.info("serving %d items with %s", len(engine.store), engine.model_version)
        gc.freeze()  # what startup made lives as long as the server: full collections need not walk it each time
        try:
            yield
        finally:
            gc.unfreeze()  # collectable again once the app stops (tests start many in one process)
            state.close()
            buckets.close()

    app = FastAPI(title="Lookalike", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Visual search for fashion catalogs: upload a garment, get the most similar items.")
    # the last added runs first: telemetry sees every answer, CORS answers preflights before keys are asked for
    app.add_middleware(BodySizeLimit, max_bytes=int(settings.max_upload_mb * 2**20) + MULTIPART_OVERHEAD,
                       detail=f"request body larger than the {settings.max_upload_mb:g} MB upload limit")
    buckets = TokenBuckets(str(settings.runtime_dir / "limits.db") if settings.runtime_dir else None)
    app.add_middleware(Admission, settings=settings, buckets=buckets)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Shopper-Id", "X-Request-Id"],
                           expose_headers=["X-Request-Id", "Retry-After"])
    app.add_middleware(RequestTelemetry, access_log=settings.access_log)

    @app.exception_handler(LookalikeError)
    async def lookalike_error(_: Request, exc: LookalikeError) -> JSONResponse:
        code = next((code for kind, code in STATUS_OF if isinstance(exc, kind)), status.HTTP_400_BAD_REQUEST)
        ERRORS.labels(error_kind(exc)).inc()
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        ERRORS.labels("invalid_request").inc()
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}" for e in exc.errors())
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg"))} for e in exc.errors()]
        return JSONResponse({"detail": problems or "invalid request", "errors": errors},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    for module in (search, items, products, meta, discover):
        app.include_router(module.router)
    plotly_js = _plotly_js()
    if plotly_js is not None:

        @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
        def plotly_script() -> FileResponse:
            return FileResponse(plotly_js, media_type="text/javascript",
                                headers={"Cache-Control": "public, max-age=604800"})

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus metrics of the whole server (every worker), to 127.0.0.1 only unless LOOKALIKE_METRICS_PUBLIC."""
        if not settings.metrics_public and (request.client is None or request.client.host not in LOOPBACK):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "metrics are served to 127.0.0.1 only: set "
                                                           "LOOKALIKE_METRICS_PUBLIC=true to open them")
        state: AppState = request.app.state.lookalike
        INDEX_ITEMS.set(len(state.engine.store))
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    _add_docs(app)
    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


LOOPBACK = frozenset({"127.0.0.1", "::1", "testclient"})  # "testclient": Starlette's test client


def error_kind(exc: Exception) -> str:
    """``ImageDecodeError`` -> ``image_decode``."""
    name = type(exc).__name__.removesuffix("Error") or "error"
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the installed ``swagger-ui-bundle-v2`` package, so the page works offline (FastAPI's
    own /docs loads it from a CDN)."""
    import swagger_ui_bundle

    app.mount(SWAGGER_URL, StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=str(app.openapi_url), title=f"{app.title} API",
                                   swagger_js_url=f"{SWAGGER_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{SWAGGER_URL}/swagger-ui.css",
                                   swagger_favicon_url="/favicon.svg")


def worker_app() -> FastAPI:
    """The application of one of ``settings.workers`` server processes (uvicorn's factory). The parent process
    opened, reconciled and calibrated the home before starting them; ONNX Runtime's threads are shared out."""
    settings = get_settings()
    configure_logging(settings.log_format)
    if settings.onnx_threads == 0:
        settings = settings.model_copy(update={"onnx_threads": max(1, (os.cpu_count() or 1) // settings.workers)})
    return create_app(settings, reconcile=False)

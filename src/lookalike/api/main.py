"""The FastAPI application: routes under /api, the dashboard at /, models loaded once in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from lookalike import __version__
from lookalike.api.routes import discover, items, meta, search
from lookalike.api.state import AppState
from lookalike.config import Settings, get_settings
from lookalike.engine import open_engine
from lookalike.errors import (
    BackboneError,
    EmptyCatalogError,
    ImageDecodeError,
    ImageTooLargeError,
    InvalidRequestError,
    LookalikeError,
    ModelMismatchError,
    NotFoundError,
)

log = logging.getLogger(__name__)
MULTIPART_OVERHEAD = 64 * 1024  # form fields and part headers around the file itself
WEB_DIR = Path(__file__).resolve().parent.parent / "web"

STATUS_OF: list[tuple[type[LookalikeError], int]] = [
    (ImageTooLargeError, status.HTTP_413_CONTENT_TOO_LARGE),
    (ImageDecodeError, status.HTTP_400_BAD_REQUEST),
    (InvalidRequestError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (EmptyCatalogError, status.HTTP_409_CONFLICT),
    (ModelMismatchError, status.HTTP_409_CONFLICT),
    (BackboneError, status.HTTP_503_SERVICE_UNAVAILABLE),
]


def _plotly_js() -> Path | None:
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; ``settings`` default to the environment's."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = open_engine(settings)
        app.state.lookalike = AppState.open(settings, engine)
        log.info("serving %d items with %s", len(engine.store), engine.model_version)
        try:
            yield
        finally:
            engine.close()

    app = FastAPI(title="Lookalike", version=__version__, lifespan=lifespan,
                  description="Visual search for fashion catalogs: upload a garment, get the most similar items.")
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Shopper-Id"])

    limit = int(settings.max_upload_mb * 2**20) + MULTIPART_OVERHEAD

    @app.middleware("http")
    async def refuse_oversized_bodies(request: Request, call_next):  # type: ignore[no-untyped-def]
        """413 from the declared Content-Length, before any of the body is read."""
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return JSONResponse({"detail": f"request body larger than the {settings.max_upload_mb:g} MB limit"},
                                status_code=status.HTTP_413_CONTENT_TOO_LARGE)
        return await call_next(request)

    @app.exception_handler(LookalikeError)
    async def lookalike_error(_: Request, exc: LookalikeError) -> JSONResponse:
        code = next((code for kind, code in STATUS_OF if isinstance(exc, kind)), status.HTTP_400_BAD_REQUEST)
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}" for e in exc.errors())
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg"))} for e in exc.errors()]
        return JSONResponse({"detail": problems or "invalid request", "errors": errors},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    for module in (search, items, meta, discover):
        app.include_router(module.router)
    plotly_js = _plotly_js()
    if plotly_js is not None:

        @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
        def plotly_script() -> FileResponse:
            return FileResponse(plotly_js, media_type="text/javascript",
                                headers={"Cache-Control": "public, max-age=604800"})

    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app

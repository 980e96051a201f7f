"""What an operator sees of each request: its id (on every log line written while it runs, and in the response's
``X-Request-Id``), its metrics (``lookalike.metrics``) and, when asked, an access-log line; and the log format.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.metrics import ERRORS, REQUEST_SECONDS, REQUESTS

REQUEST_ID: ContextVar[str | None] = ContextVar("lookalike_request_id", default=None)
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # a caller's own id is kept when it looks like an id
access_log = logging.getLogger("lookalike.access")

# LogRecord's own attributes: anything else on a record came in ``extra`` and goes into the JSON line
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RequestTelemetry:
    """ASGI middleware: gives each HTTP request an id (the caller's ``X-Request-Id`` when it looks like one), counts
    and times it by route template and status, and logs it when ``access_log`` is on."""

    def __init__(self, app: ASGIApp, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id")
        request_id = given if given and VALID_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500  # unless a response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method, route = scope["method"], route_of(scope)
            REQUESTS.labels(method, route, str(status)).inc()
            REQUEST_SECONDS.labels(method, route).observe(elapsed)
            if status >= 500:
                ERRORS.labels("internal").inc()
            if self.access_log:
                access_log.info("%s %s %d %.1f ms", method, scope["path"], status, elapsed * 1000,
                                extra={"method": method, "path": scope["path"], "route": route, "status": status,
                                       "ms": round(elapsed * 1000, 2)})
            REQUEST_ID.reset(token)


def route_of(scope: Scope) -> str:
    """The route template that answered (``/api/items/{item_id}``), so metrics have few label values: ``static``
    for the dashboard's files, ``unmatched`` when no route matched."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return "unmatched"
    return path if path.startswith("/api") or path in ("/metrics", "/docs", "/openapi.json") else "static"


class RequestIdFilter(logging.Filter):
    """Puts the current request's id (or ``-``) on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, the record's ``extra`` fields, and the
    exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or REQUEST_ID.get(),
        }
        line |= {key: value for key, value in vars(record).items() if key not in _RECORD_FIELDS and key not in line}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(log_format: str) -> None:
    """The server's logging: to stderr, as text with the request id or as JSON lines (Lookalike's own loggers from
    INFO, the libraries' from WARNING); uvicorn's loggers too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("lookalike").setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our own access log has the request id

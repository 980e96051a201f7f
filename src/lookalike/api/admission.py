"""Who may use the API, and how fast: read keys, and token buckets per client address and per shopper.

Buckets live in a small SQLite table that every server process of one server shares (a file in the server's
runtime folder, ``LOOKALIKE_RUNTIME_DIR``, which ``serve --workers N`` makes; in memory for one process), so a
limit holds for the server as a whole: one statement per request takes a token or says how long until one is there.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.cookies import SimpleCookie

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from lookalike.config import Settings
from lookalike.metrics import ERRORS

KEY_COOKIE = "lookalike_key"  # the dashboard's read key: sent with every request, images included
_TAKE = """
INSERT INTO buckets (key, tokens, at, granted) VALUES (:key, :burst - 1, :now, 1)
ON CONFLICT (key) DO UPDATE SET
    granted = min(:burst, tokens + (:now - at) * :rate) >= 1,
    tokens = min(:burst, tokens + (:now - at) * :rate) - (min(:burst, tokens + (:now - at) * :rate) >= 1),
    at = :now
RETURNING tokens, granted
"""
_FORGET = "DELETE FROM buckets WHERE at < ?"
OPEN_TIMEOUT_S = 5.0  # how long opening the shared buckets waits for other processes
SWEEP_EVERY = 10_000  # takes between removals of buckets idle long enough to be full again
SEARCH_PATHS = ("/api/search", "/api/recommendations")  # and /api/items/{id}/similar
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TokenBuckets:
    """Token buckets by key in SQLite (``path``, or memory); thread-safe, and shared by processes on one file."""

    def __init__(self, path: str | None = None) -> None:
        self._connection = sqlite3.connect(path or ":memory:", isolation_level=None, check_same_thread=False,
                                           timeout=OPEN_TIMEOUT_S)
        _write_ahead_log(self._connection)
        self._connection.execute("PRAGMA synchronous=OFF")
        self._connection.execute("CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tokens REAL NOT NULL, "
                                 "at REAL NOT NULL, granted INTEGER NOT NULL)")
        self._lock = threading.Lock()
        self._takes = 0

    def take(self, key: str, rate: float, burst: int) -> float:
        """Take a token from ``key``'s bucket (``burst`` tokens, refilled at ``rate`` per second): 0.0 when taken,
        else the seconds until one is there."""
        now = time.time()
        with self._lock:
            tokens, granted = self._connection.execute(_TAKE, {"key": key, "burst": burst, "now": now,
                                                               "rate": rate}).fetchone()
            self._takes += 1
            if self._takes % SWEEP_EVERY == 0:
                self._connection.execute(_FORGET, (now - 3600,))
        return 0.0 if granted else (1.0 - tokens) / rate

    def close(self) -> None:
        self._connection.close()


def _write_ahead_log(connection: sqlite3.Connection) -> None:
    """Switch the database to WAL. While another process opens the same new file (server workers start together),
    SQLite answers "database is locked" at once rather than waiting its busy timeout: tried again until then."""
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second; 0: no limit
    burst: int


def key_name(secret: str) -> str:
    """How logs name a key: a short fingerprint, never the key."""
    return "key-" + hashlib.sha256(secret.encode()).hexdigest()[:8]


def valid_key(given: str | None, keys: Sequence[str]) -> str | None:
    """The key ``given`` matches (compared in constant time with every key), or None."""
    found = None
    for key in keys:
        if given is not None and hmac.compare_digest(given.encode(), key.encode()):
            found = key
    return found


class Admission:
    """ASGI middleware in front of the API: a read key when ``read_tokens`` are set (the write token counts as one),
    then the rate limits of searches (per client address and per shopper) and of writes (per client address).
    Answers 401 or 429 (with ``Retry-After``) itself; the health check is always let through."""

    def __init__(self, app: ASGIApp, settings: Settings, buckets: TokenBuckets) -> None:
        self.app = app
        self.buckets = buckets
        self.read_keys = [s.get_secret_value() for s in settings.read_tokens if s.get_secret_value()]
        if self.read_keys and settings.api_token is not None and settings.api_token.get_secret_value():
            self.read_keys.append(settings.api_token.get_secret_value())
        self.search = Limit(settings.search_rate, settings.search_burst)
        self.shopper = Limit(settings.shopper_search_rate, settings.search_burst)
        self.write = Limit(settings.write_rate, settings.write_burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or path == "/api/health":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.read_keys and valid_key(presented_key(headers), self.read_keys) is None:
            ERRORS.labels("unauthorized").inc()
            await JSONResponse({"detail": "this server needs a key: send it as a bearer token (or the dashboard's "
                                          f"{KEY_COOKIE} cookie)"}, status_code=401,
                               headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        wait = self._wait(scope, headers)
        if wait > 0:
            ERRORS.labels("rate_limited").inc()
            await JSONResponse({"detail": f"too many requests: try again in {wait:.1f} s"}, status_code=429,
                               headers={"Retry-After": str(max(1, math.ceil(wait)))})(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _wait(self, scope: Scope, headers: Headers) -> float:
        """0 when the request may go on (its tokens taken), else the seconds to wait."""
        method, path = scope["method"], scope["path"]
        client = scope["client"][0] if scope.get("client") else "unknown"
        searching = (method == "POST" and path.startswith("/api/search")) or path.startswith(SEARCH_PATHS) or (
            path.startswith("/api/items/") and path.endswith("/similar"))
        checks: list[tuple[str, Limit]] = []
        if searching:
            checks.append((f"search:{client}", self.search))
            shopper = headers.get("x-shopper-id") or cookie(headers, "lookalike_shopper")
            if shopper:
                checks.append((f"shopper:{shopper[:64]}", self.shopper))
        elif method in WRITE_METHODS:
            checks.append((f"write:{client}", self.write))
        return max((self.buckets.take(key, limit.rate, limit.burst) for key, limit in checks if limit.rate > 0),
                   default=0.0)


def presented_key(headers: Headers) -> str | None:
    """The bearer token of a request, or else its key cookie."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return cookie(headers, KEY_COOKIE)


def cookie(headers: Headers, name: str) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    try:
        jar = SimpleCookie(raw)
    except Exception:  # noqa: BLE001 - a malformed cookie header is no cookie
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None

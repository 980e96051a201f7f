"""A real HTTP server on 127.0.0.1 for feeds and product images, with the misbehaviours image hosts have: slow
answers, errors that pass, redirect loops, oversized files and HTML error pages served as images. ETag and
If-None-Match are honoured, and every request is counted, so tests can see what was downloaded."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

from imagegen import jpeg_bytes


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "image/jpeg"
    status: list[int] = field(default_factory=list)  # statuses to answer first, one per request, then 200
    delay: float = 0.0  # seconds before answering
    redirect: str | None = None  # answer 302 to this path
    declared_length: int | None = None  # a Content-Length to claim (and send nothing)
    etag: bool = True


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.downloads: Counter[str] = Counter()  # 200 answers with a body
        self.active: Counter[str] = Counter()  # requests being answered, by path prefix (up to the last "/")
        self.most_active: Counter[str] = Counter()  # the most at once
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def reset_counts(self) -> None:
        self.hits.clear()
        self.downloads.clear()
        self.most_active.clear()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server interface
                path = self.path.split("?", 1)[0]
                group = path.rsplit("/", 1)[0]
                with server._lock:
                    server.hits[path] += 1
                    server.active[group] += 1
                    server.most_active[group] = max(server.most_active[group], server.active[group])
                try:
                    self._route(path)
                finally:
                    with server._lock:
                        server.active[group] -= 1

            def _route(self, path: str) -> None:
                route = server.routes.get(path)
                if route is None:
                    return self._answer(404, b"not found", "text/plain")
                if route.delay:
                    time.sleep(route.delay)
                if route.status:
                    return self._answer(route.status.pop(0), b"try again", "text/plain")
                if route.redirect is not None:
                    self.send_response(302)
                    self.send_header("Location", route.redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if route.declared_length is not None:
                    self.send_response(200)
                    self.send_header("Content-Type", route.content_type)
                    self.send_header("Content-Length", str(route.declared_length))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    return None
                etag = f'"{hashlib.sha1(route.body).hexdigest()[:16]}"'
                if route.etag and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                with server._lock:
                    server.downloads[path] += 1
                return self._answer(200, route.body, route.content_type, etag if route.etag else None)

            def _answer(self, status: int, body: bytes, content_type: str, etag: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if etag:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def start(self) -> FeedServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_photos(server: FeedServer, path: str, product: Image.Image, turned: float = 8) -> tuple[str, str]:
    """Serve a product's photo at ``path.jpg`` and the same product turned a little at ``path-b.jpg``; returns
    their URLs."""
    server.routes[f"{path}.jpg"] = Route(jpeg_bytes(product))
    server.routes[f"{path}-b.jpg"] = Route(jpeg_bytes(product.rotate(turned, fillcolor=(245, 245, 245))))
    return f"{server.url}{path}.jpg", f"{server.url}{path}-b.jpg"


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up on a slow answer (a timeout under test) closed the connection


@contextmanager
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()

"""Image downloads against a real HTTP server on 127.0.0.1: retries, limits, redirects, sniffing, conditional
requests, concurrency per host, and the refusal of non-public addresses."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from lookalike.errors import FetchError
from lookalike.io.fetch import Fetcher, FetchLimits

from feedserver import FeedServer, Route, feed_server


def _jpeg(colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, "JPEG")
    return buffer.getvalue()


LIMITS = FetchLimits(allow=("127.0.0.1",), read_timeout=0.5, retries=2, backoff=0.01, max_bytes=100_000)


@pytest.fixture
def server() -> FeedServer:
    with feed_server() as running:
        yield running


def test_a_loopback_address_is_refused_unless_allowed(server: FeedServer):
    server.routes["/a.jpg"] = Route(_jpeg())
    with Fetcher(FetchLimits()) as strict, pytest.raises(FetchError, match="non-public address"):
        strict.fetch(f"{server.url}/a.jpg")
    assert server.hits["/a.jpg"] == 0  # refused before connecting
    for allowed in ("127.0.0.1", "127.0.0.0/8"):
        with Fetcher(FetchLimits(allow=(allowed,))) as fetcher:
            assert fetcher.fetch(f"{server.url}/a.jpg").image_format == "JPEG"
    with Fetcher(LIMITS) as fetcher:
        for url in ("http://10.0.0.7/x.jpg", "http://169.254.169.254/latest/meta-data", "http://[::1]:9/x.jpg"):
            with pytest.raises(FetchError, match="non-public address"):
                fetcher.fetch(url)
        with pytest.raises(FetchError, match="not an http"):
            fetcher.fetch("file:///etc/passwd")


def test_server_errors_are_retried_and_client_errors_are_not(server: FeedServer):
    server.routes["/flaky.jpg"] = Route(_jpeg(), status=[500, 503])
    server.routes["/gone.jpg"] = Route(_jpeg(), status=[404])
    server.routes["/down.jpg"] = Route(_jpeg(), status=[500, 500, 500, 500])
    with Fetcher(LIMITS) as fetcher:
        assert fetcher.fetch(f"{server.url}/flaky.jpg").data == _jpeg()
        with pytest.raises(FetchError, match="HTTP 404"):
            fetcher.fetch(f"{server.url}/gone.jpg")
        with pytest.raises(FetchError, match=r"HTTP 500 \(after 3 attempts\)"):
            fetcher.fetch(f"{server.url}/down.jpg")
    assert server.hits["/flaky.jpg"] == 3 and server.hits["/gone.jpg"] == 1 and server.hits["/down.jpg"] == 3


def test_slow_answers_time_out_after_the_retries(server: FeedServer):
    server.routes["/slow.jpg"] = Route(_jpeg(), delay=2.0)
    started = time.perf_counter()
    with Fetcher(LIMITS) as fetcher, pytest.raises(FetchError, match="timed out"):
        fetcher.fetch(f"{server.url}/slow.jpg")
    assert time.perf_counter() - started < 4  # 3 attempts of 0.5 s, not 3 x 2 s
    assert server.hits["/slow.jpg"] == 3


def test_redirects_are_followed_five_times_at_most(server: FeedServer):
    server.routes["/moved.jpg"] = Route(redirect="/here.jpg")
    server.routes["/here.jpg"] = Route(_jpeg())
    server.routes["/loop.jpg"] = Route(redirect="/loop.jpg")
    with Fetcher(LIMITS) as fetcher:
        assert fetcher.fetch(f"{server.url}/moved.jpg").image_format == "JPEG"
        with pytest.raises(FetchError, match="more than 5 redirects"):
            fetcher.fetch(f"{server.url}/loop.jpg")
    assert server.hits["/loop.jpg"] == 6


def test_a_redirect_to_a_private_address_is_refused(server: FeedServer):
    server.routes["/evil.jpg"] = Route(redirect="http://10.1.2.3/internal.jpg")
    with Fetcher(LIMITS) as fetcher, pytest.raises(FetchError, match="non-public address"):
        fetcher.fetch(f"{server.url}/evil.jpg")


def test_oversized_and_mislabelled_answers_are_refused(server: FeedServer):
    server.routes["/declared.jpg"] = Route(declared_length=50_000_000)
    server.routes["/streamed.jpg"] = Route(b"\xff\xd8\xff" + b"x" * 200_000, etag=False)
    server.routes["/error.jpg"] = Route(b"<!DOCTYPE html><html><body>Internal error</body></html>")
    with Fetcher(LIMITS) as fetcher:
        with pytest.raises(FetchError, match="50,000,000 declared"):
            fetcher.fetch(f"{server.url}/declared.jpg")
        with pytest.raises(FetchError, match="larger than 100,000 bytes"):
            fetcher.fetch(f"{server.url}/streamed.jpg")
        with pytest.raises(FetchError, match=r"looks like an HTML page\) \(served as image/jpeg\)"):
            fetcher.fetch(f"{server.url}/error.jpg")


def test_an_unchanged_image_is_not_downloaded_again(server: FeedServer):
    server.routes["/a.jpg"] = Route(_jpeg())
    with Fetcher(LIMITS) as fetcher:
        first = fetcher.fetch(f"{server.url}/a.jpg")
        again = fetcher.fetch(f"{server.url}/a.jpg", etag=first.etag)
        assert first.data == _jpeg() and again.data is None and again.etag == first.etag
        server.routes["/a.jpg"] = Route(_jpeg("blue"))
        changed = fetcher.fetch(f"{server.url}/a.jpg", etag=first.etag)
    assert changed.data == _jpeg("blue") and changed.etag != first.etag
    assert server.downloads["/a.jpg"] == 2


def test_downloads_from_one_host_are_bounded(server: FeedServer):
    for i in range(12):
        server.routes[f"/img/{i}.jpg"] = Route(_jpeg(), delay=0.1)
    limits = FetchLimits(allow=("127.0.0.1",), concurrency=8, per_host=3)
    with Fetcher(limits) as fetcher, ThreadPoolExecutor(12) as pool:
        list(pool.map(lambda i: fetcher.fetch(f"{server.url}/img/{i}.jpg"), range(12)))
    assert server.most_active["/img"] == 3

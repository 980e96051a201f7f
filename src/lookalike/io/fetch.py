"""Downloading product images over HTTP(S), the way a good crawler does.

- **Bounded**: at most ``concurrency`` downloads at once, ``per_host`` of them to one host.
- **Patient, not stubborn**: connect and read timeouts; a timeout, a connection error, a 429 or a 5xx is retried
  with exponential backoff (tenacity), ``retries`` times; a 4xx is final.
- **Safe**: at most ``max_redirects`` redirects, each hop checked; loopback, private, link-local and other
  non-public addresses are refused (server-side request forgery) unless their host or network is allowed; at most
  ``max_bytes`` read, refused from ``Content-Length`` before the body when it says so; the image type sniffed from
  the bytes (an HTML error page served as ``image/jpeg`` is refused).
- **Conditional**: given the ``ETag`` and ``Last-Modified`` of an earlier download, the server may answer 304 and
  nothing is downloaded again.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections import defaultdict
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx2 as httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from lookalike.errors import FetchError, ImageDecodeError
from lookalike.io.images import sniff_image

REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "Lookalike/0.1 (product image sync)"


@dataclass(frozen=True)
class FetchLimits:
    concurrency: int = 16
    per_host: int = 4
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    retries: int = 3
    backoff: float = 0.25  # seconds before the first retry; doubles each time
    max_redirects: int = 5
    max_bytes: int = 10 * 2**20
    allow: tuple[str, ...] = ()  # hosts or networks (CIDR) reachable although not public


@dataclass(frozen=True)
class Fetched:
    """An answer: the bytes (None when the server said they had not changed), their validators and format."""

    url: str
    data: bytes | None
    etag: str | None = None
    last_modified: str | None = None
    image_format: str | None = None


class _Transient(Exception):
    """A failure worth retrying (timeout, connection error, 429, 5xx)."""


class Fetcher:
    """Downloads images within :class:`FetchLimits`; thread-safe (one client, semaphores per host)."""

    def __init__(self, limits: FetchLimits | None = None) -> None:
        self.limits = limits or FetchLimits()
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.limits.read_timeout, connect=self.limits.connect_timeout),
            limits=httpx.Limits(max_connections=self.limits.concurrency,
                                max_keepalive_connections=self.limits.concurrency),
            follow_redirects=False, headers={"User-Agent": USER_AGENT}, trust_env=False)
        self._overall = threading.Semaphore(self.limits.concurrency)
        self._hosts: dict[str, threading.Semaphore] = defaultdict(lambda: threading.Semaphore(self.limits.per_host))
        self._hosts_lock = threading.Lock()
        self._allowed_hosts, self._allowed_networks = _allow_list(self.limits.allow)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None, *,
              image: bool = True, max_bytes: int | None = None) -> Fetched:
        """Download one image (see the module docstring), or with ``image`` False any document (a feed) of up to
        ``max_bytes``; FetchError says why not."""
        retrying = Retrying(stop=stop_after_attempt(self.limits.retries + 1), reraise=True,
                            wait=wait_exponential(multiplier=self.limits.backoff, max=10),
                            retry=retry_if_exception_type(_Transient))
        try:
            return retrying(self._fetch_once, url, etag, last_modified, image, max_bytes or self.limits.max_bytes)
        except _Transient as exc:
            raise FetchError(f"{exc} (after {self.limits.retries + 1} attempts)") from None

    def _fetch_once(self, url: str, etag: str | None, last_modified: str | None, image: bool, max_bytes: int
                    ) -> Fetched:
        headers = {"Accept": "image/*" if image else "*/*"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        for _ in range(self.limits.max_redirects + 1):
            host = self._checked_host(current)
            with self._slot(host), self._request(current, headers) as response:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    current = urljoin(current, response.headers["location"])
                    continue
                return self._read(url, response, image, max_bytes)
        raise FetchError(f"more than {self.limits.max_redirects} redirects")

    def _request(self, url: str, headers: dict[str, str]) -> AbstractContextManager[httpx.Response]:
        return self._client.stream("GET", url, headers=headers)

    def _read(self, url: str, response: httpx.Response, image: bool, max_bytes: int) -> Fetched:
        status = response.status_code
        if status == 304:
            return Fetched(url, None, response.headers.get("etag"), response.headers.get("last-modified"))
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}")
        if status != 200:
            raise FetchError(f"HTTP {status}")
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"larger than {max_bytes:,} bytes ({int(declared):,} declared)")
        body = bytearray()
        try:
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(f"larger than {max_bytes:,} bytes")
        except httpx.TimeoutException as exc:
            raise _Transient(f"timed out reading ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Transient(f"connection failed while reading: {exc}") from None
        data = bytes(body)
        if not image:
            return Fetched(url, data, response.headers.get("etag"), response.headers.get("last-modified"))
        try:
            kind = sniff_image(data)
        except ImageDecodeError as exc:
            served = response.headers.get("content-type", "no type")
            raise FetchError(f"{exc} (served as {served})") from None
        return Fetched(url, data, response.headers.get("etag"), response.headers.get("last-modified"), kind)

    def _slot(self, host: str) -> _Slots:
        with self._hosts_lock:
            per_host = self._hosts[host]
        return _Slots(self._overall, per_host)

    def _checked_host(self, url: str) -> str:
        """The URL's host, after refusing a scheme other than HTTP(S) and a host that is not public."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"not an http(s) URL: {url[:200]}")
        host = parts.hostname.lower()
        if host in self._allowed_hosts:
            return host
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)}
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchError(f"cannot resolve {host}: {exc}") from None
        for text in addresses:
            address = ipaddress.ip_address(str(text).split("%", 1)[0])
            if not address.is_global and not any(address in net for net in self._allowed_networks):
                raise FetchError(f"{host} resolves to a non-public address ({address}); allow it with "
                                 "LOOKALIKE_FETCH_ALLOW_HOSTS")
        return host


class _Slots:
    """Holds the overall and the per-host semaphores for one request; maps httpx's errors to retryable ones."""

    def __init__(self, overall: threading.Semaphore, per_host: threading.Semaphore) -> None:
        self._overall, self._per_host = overall, per_host

    def __enter__(self) -> None:
        self._overall.acquire()
        self._per_host.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> None:
        self._per_host.release()
        self._overall.release()
        if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
            raise FetchError(f"invalid URL: {exc}") from None
        if isinstance(exc, httpx.TimeoutException):
            raise _Transient(f"timed out ({type(exc).__name__})") from None
        if isinstance(exc, httpx.TransportError):
            raise _Transient(f"connection failed: {exc}") from None


def _allow_list(entries: Iterable[str]) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    hosts: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in (e.strip().lower() for e in entries):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry)
    return hosts, networks

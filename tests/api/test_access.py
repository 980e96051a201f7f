"""Access control and limits: tokens on every catalog change, images only by catalog id, configurable CORS origins
and upload limit (also for chunked uploads without a Content-Length, against a real uvicorn server)."""

from __future__ import annotations

import io
import select
import socket
from urllib.parse import urlsplit

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from lookalike.api import deps
from lookalike.api.main import create_app
from lookalike.config import get_settings

from apiserver import TOKEN, ingested, running
from imagegen import make_image

READ_ONLY_POSTS = {"/api/search", "/api/search/refine"}  # shoppers' POST routes: they change nothing in the catalog


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    make_image("checks", seed).save(buffer, format="JPEG")
    return buffer.getvalue()


def catalog_changing_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) of the API that may change the catalog, from its OpenAPI schema."""
    paths = client.get("/openapi.json").json()["paths"]
    return [(method.upper(), path) for path, operations in paths.items() for method in operations
            if method in {"post", "put", "patch", "delete"} and path not in READ_ONLY_POSTS]


BAD_CREDENTIALS = {
    "no Authorization header": ({}, 401),
    "empty bearer": ({"Authorization": "Bearer "}, 401),
    "Basic scheme": ({"Authorization": "Basic czNjcmV0LXRva2Vu"}, 401),
    "token without scheme": ({"Authorization": TOKEN}, 401),
    "wrong token": ({"Authorization": "Bearer guess"}, 403),
    "token with the last character changed": ({"Authorization": f"Bearer {TOKEN[:-1]}X"}, 403),
    "token prefix": ({"Authorization": f"Bearer {TOKEN[:-1]}"}, 403),
    "token with a suffix": ({"Authorization": f"Bearer {TOKEN}x"}, 403),
    "token in another case": ({"Authorization": f"Bearer {TOKEN.upper()}"}, 403),
}


def test_every_catalog_change_refuses_missing_and_wrong_tokens(client, auth):
    routes = catalog_changing_routes(client)
    assert ("POST", "/api/items") in routes and ("DELETE", "/api/items/{item}") in routes
    before = client.get("/api/stats").json()["items"]
    for method, path in routes:
        url = path.replace("{item}", "1")
        for name, (headers, code) in BAD_CREDENTIALS.items():
            response = client.request(method, url, headers=headers,
                                      files=[("files", ("a.jpg", jpeg(1), "image/jpeg"))] if method == "POST" else None)
            assert response.status_code == code, (method, path, name, response.text)
            assert "token" in response.json()["detail"], (method, path, name)
    assert client.get("/api/stats").json()["items"] == before
    assert client.get("/api/items/1").status_code == 200
    assert client.delete("/api/items/1", headers=auth).status_code == 204  # the right token works


def test_tokens_are_compared_in_constant_time(client, monkeypatch):
    calls = []
    real = deps.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(deps.hmac, "compare_digest", spy)
    assert client.delete("/api/items/1", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert calls == [(b"nope", TOKEN.encode())]


OPAQUE_KEYS = {"/api/report/files/{name}", "/api/products/{sku}", "/api/jobs/{job_id}"}


def test_images_are_served_by_catalog_id_only(client, api_settings):
    """No route takes a client-given path: ids are integers, report files an allowlist, SKUs and job ids opaque keys
    (never part of a file name as given), static files stay put."""
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert parameter["schema"].get("type") == "integer" or path in OPAQUE_KEYS, path
    secret = api_settings.home / "secret.db"  # a file beside the catalog's data, whatever the stores are
    secret.write_bytes(b"SQLite format 3\x00 top secret")
    for url in ["/api/items/..%2F..%2Fsecret.db/image", "/api/report/files/..%2F..%2Fsecret.db",
                "/api/report/files/secret.db", "/../secret.db", "/%2e%2e/%2e%2e/secret.db", "/secret.db",
                "/static/..%2F..%2F..%2Fsecret.db", f"/api/items/{secret}/image", "/api/products/..%2F..%2Fsecret.db",
                "/api/jobs/..%2F..%2Fsecret.db"]:
        response = client.get(url)
        assert response.status_code in (404, 422), (url, response.status_code)
        assert b"top secret" not in response.content


def test_cors_origins_are_configurable(api_settings, catalog_dir):
    settings = ingested(api_settings.model_copy(update={"cors_origins": ["https://shop.example"]}), catalog_dir)
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with TestClient(create_app(settings)) as client:
        allowed = client.options("/api/items", headers={"Origin": "https://shop.example", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        denied = client.options("/api/items", headers={"Origin": "https://evil.example", **preflight})
        assert denied.status_code == 400 and "access-control-allow-origin" not in denied.headers
        simple = client.get("/api/health", headers={"Origin": "https://evil.example"})
        assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers
    with TestClient(create_app(api_settings)) as client:  # default: no cross-origin access at all
        response = client.options("/api/items", headers={"Origin": "https://shop.example", **preflight})
        assert "access-control-allow-origin" not in response.headers


def test_cors_origins_and_upload_limit_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("LOOKALIKE_CORS_ORIGINS", '["https://a.example", "https://b.example"]')
    monkeypatch.setenv("LOOKALIKE_MAX_UPLOAD_MB", "0.5")
    settings = get_settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"] and settings.max_upload_mb == 0.5


def post_chunked(base_url: str, path: str, total: int, piece: int = 1 << 16) -> tuple[int, bytes, int]:
    """POST a multipart upload of ``total`` bytes with Transfer-Encoding: chunked (no Content-Length), raw on a
    socket; stops sending as soon as the server answers. Returns (status, response body, bytes sent)."""
    address = urlsplit(base_url)
    sock = socket.create_connection((address.hostname, address.port), timeout=30)
    boundary = "lookalike-boundary"
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nTransfer-Encoding: chunked\r\n"
                 f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode())
    part = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode() + b"\xff\xd8\xff"
    sent = 0
    try:
        while sent < total:
            data = part if sent == 0 else b"\0" * piece
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
            sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            sent += len(data)
        else:
            sock.sendall(f"--{boundary}--\r\n".encode().join([b"2e\r\n", b"\r\n0\r\n\r\n"]))
    except (BrokenPipeError, ConnectionResetError):
        pass
    response = b""
    try:
        while b"\r\n\r\n" not in response or len(response.split(b"\r\n\r\n", 1)[1]) < 10:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body, sent


def test_lowered_upload_limit_refuses_declared_and_streamed_bodies_before_reading_them(api_settings, catalog_dir):
    settings = ingested(api_settings.model_copy(update={"max_upload_mb": 0.5}), catalog_dir)
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        under = http.post("/api/search", files={"file": ("ok.jpg", jpeg(2), "image/jpeg")})
        assert under.status_code == 200
        over = http.post("/api/search", files={"file": ("big.jpg", b"\xff\xd8\xff" + b"\0" * 600_000, "image/jpeg")})
        assert over.status_code == 413 and "0.5 MB" in over.json()["detail"]
        added = http.post("/api/items", headers={"Authorization": f"Bearer {TOKEN}"},
                          files=[("files", ("big.jpg", b"\xff\xd8\xff" + b"\0" * 600_000, "image/jpeg"))])
        assert added.status_code == 413
        total = 64 * 2**20
        status, body, sent = post_chunked(url, "/api/search", total)
        assert status == 413 and b"0.5 MB" in body, (status, body)
        assert sent < total // 4, f"the server read {sent:,} of {total:,} bytes before refusing"
        assert http.post("/api/search", files={"file": ("ok.jpg", jpeg(3), "image/jpeg")}).status_code == 200


@pytest.mark.parametrize("endpoint", ["/api/search", "/api/items"])
def test_chunked_upload_under_the_limit_is_accepted(api_settings, catalog_dir, endpoint):
    settings = ingested(api_settings, catalog_dir)
    with running(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:

        def body():
            yield from (jpeg(4)[i : i + 100] for i in range(0, len(jpeg(4)), 100))

        boundary = "b0undary"
        name = "file" if endpoint == "/api/search" else "files"
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="q.jpg"\r\n'
                 "Content-Type: image/jpeg\r\n\r\n".encode(), *body(), f"\r\n--{boundary}--\r\n".encode()]
        response = http.post(endpoint, content=iter(parts), headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Bearer {TOKEN}"})
        assert "content-length" not in response.request.headers
        assert response.status_code in (200, 201), response.text

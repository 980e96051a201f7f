"""A corpus of hostile and unusual uploads, generated here, sent to POST /api/search and POST /api/items of a real
uvicorn server: malformed input gets a 4xx with a clear JSON message, valid but unusual images are searched (and
added) normally, nothing ever gets a 500, and the server answers a valid search right after each one."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from typing import Literal

import httpx2 as httpx
import numpy as np
import pytest
from PIL import Image

from imagegen import make_image

pytestmark = pytest.mark.filterwarnings("ignore:Truncated File Read")  # Pillow's note on the truncated TIFF case
Outcome = Literal["bad", "ok"] | None
LIMIT = 10 * 2**20  # the default upload limit the live server runs with


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose hand-made IHDR declares ``width`` x ``height`` RGB pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + png_chunk(b"IEND", b""))


def gif_declaring(width: int, height: int) -> bytes:
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return screen + descriptor + b"\x02\x02\x44\x01\x00;"


def bmp_declaring(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 64, 0, 0, 54) + info + b"\0" * 64


def sample(seed: int, category: str = "circles") -> Image.Image:
    return make_image(category, 500 + seed)


def cmyk_jpeg() -> bytes:
    return encode(sample(1, "stripes").convert("CMYK"), "JPEG")


def sixteen_bit_png() -> bytes:
    grey = np.asarray(sample(2, "checks").convert("L"), np.uint16) * 257
    image = Image.fromarray(grey.astype(np.uint16))
    assert image.mode == "I;16"
    return encode(image, "PNG")


def animated_gif() -> bytes:
    frames = [sample(3 + i) for i in range(4)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


def huge_exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription: nearly the whole 64 KB APP1 segment
    exif[0x0112] = 6  # orientation: rotate
    return encode(sample(4, "stripes"), "JPEG", exif=exif.tobytes())


def huge_exif_png() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "y" * 2_000_000  # an eXIf chunk of 2 MB
    return encode(sample(5, "checks"), "PNG", exif=exif.tobytes())


def transparent_palette_png() -> bytes:
    image = sample(6).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


VALID_JPEG = encode(sample(0), "JPEG")
VALID_PNG = encode(sample(0), "PNG")


@dataclass(frozen=True)
class Case:
    """One request: a file part (or a raw body), form fields, and what each endpoint must answer."""

    name: str
    data: bytes | None = None
    filename: str = "upload.jpg"
    content_type: str = "image/jpeg"
    form: dict[str, str] = field(default_factory=dict)
    file_field: str | None = None  # None: the endpoint's own field name
    raw: tuple[bytes, str] | None = None  # (body, content type) sent instead of a multipart form
    search: Outcome = "bad"
    add: Outcome = "bad"
    says: str = ""  # a word the error message must contain (case-insensitive)


def bad_image(name: str, data: bytes, says: str, **kwargs: object) -> Case:
    return Case(name, data, says=says, **kwargs)  # type: ignore[arg-type]


def valid_image(name: str, data: bytes, filename: str = "upload.img", content_type: str = "image/png") -> Case:
    return Case(name, data, filename, content_type, search="ok", add="ok")


def search_param(name: str, says: str, **form: str) -> Case:
    return Case(name, VALID_JPEG, form=form, add=None, says=says)


def add_param(name: str, says: str, **form: str) -> Case:
    return Case(name, encode(sample(40), "JPEG"), form=form, search=None, says=says)


JPEG_BYTES = VALID_JPEG
PNG_BYTES = VALID_PNG
CASES: list[Case] = [
    # no usable body at all
    Case("empty multipart body", raw=(b"", "multipart/form-data; boundary=xyz"), says="file"),
    Case("empty body, no content type", raw=(b"", ""), says="file"),
    bad_image("zero-byte file", b"", "empty"),
    # not images, named .jpg
    bad_image("plain text named .jpg", b"just some words, not pixels\n" * 20, "text"),
    bad_image("HTML page named .jpg", b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", "HTML"),
    bad_image("PDF named .jpg", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n", "PDF"),
    bad_image("SVG named .jpg", b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9"/></svg>', "SVG"),
    bad_image("SVG with XML prolog", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
    bad_image("JSON named .jpg", b'{"image": "definitely"}', "text"),
    bad_image("random bytes", np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes(), "recognised"),
    bad_image("ELF executable", b"\x7fELF\x02\x01\x01" + b"\0" * 200, "recognised"),
    bad_image("ZIP archive", b"PK\x03\x04" + b"\0" * 100, "recognised"),
    # truncated and corrupted images
    bad_image("JPEG cut in half", JPEG_BYTES[: len(JPEG_BYTES) // 2], "truncated"),
    bad_image("JPEG header only", JPEG_BYTES[:20], "corrupt"),
    bad_image("JPEG with scrambled scan data",
              JPEG_BYTES[:300] + bytes(b ^ 0x5A for b in JPEG_BYTES[300:600]) + JPEG_BYTES[600:], "corrupt"),
    bad_image("JPEG with a garbage frame header", JPEG_BYTES[:2] + b"\xff\xc0\x00\x11" + b"\xff" * 40, "corrupt"),
    bad_image("JPEG tail zeroed", JPEG_BYTES[: len(JPEG_BYTES) // 2] + bytes(len(JPEG_BYTES) // 2), "truncated"),
    bad_image("PNG cut in half", PNG_BYTES[: len(PNG_BYTES) // 2], "truncated", filename="x.png"),
    bad_image("PNG with a bad header CRC", PNG_BYTES[:29] + bytes([PNG_BYTES[29] ^ 1]) + PNG_BYTES[30:], "corrupt"),
    bad_image("PNG with garbage pixel data",
              png_declaring(96, 96)[:33] + png_chunk(b"IDAT", b"garbage" * 9) + png_chunk(b"IEND", b""), "corrupt"),
    bad_image("PNG signature only", PNG_BYTES[:8], "corrupt"),
    bad_image("GIF truncated", encode(sample(7), "GIF")[:40], "truncated"),
    bad_image("WebP truncated", encode(sample(7), "WEBP")[:60], "corrupt"),
    bad_image("TIFF truncated", encode(sample(7), "TIFF")[:100], "corrupt"),
    bad_image("BMP truncated", encode(sample(7), "BMP")[:100], "truncated"),
    bad_image("HEIF box with garbage", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\xde\xad" * 50, "corrupt"),
    # formats Pillow reads but Lookalike refuses
    bad_image("Windows icon", encode(sample(8), "ICO"), "recognised"),
    bad_image("PPM bitmap", encode(sample(8), "PPM"), "recognised"),
    # decompression bombs
    bad_image("PNG declaring 50,000 x 50,000", png_declaring(50_000, 50_000), "too large", filename="bomb.png"),
    bad_image("GIF declaring 65,535 x 65,535", gif_declaring(65_535, 65_535), "too large"),
    bad_image("BMP declaring 50,000 x 50,000", bmp_declaring(50_000, 50_000), "too large"),
    # over the size limit (refused from Content-Length; the chunked variant is in test_access.py)
    bad_image("upload over the 10 MB limit", b"\xff\xd8\xff" + b"\0" * LIMIT, "limit"),
    # malformed forms
    Case("wrong file field name", VALID_JPEG, file_field="image", says="file"),
    Case("missing file, only fields", None, form={"k": "3", "category": "circles"}, says="file"),
    Case("file sent as a text field", None, form={"file": "not a file", "files": "not a file"}, says="file"),
    Case("JSON body instead of a form", raw=(b'{"file": "abc", "k": 3}', "application/json"), says="file"),
    Case("urlencoded body", raw=(b"file=abc&k=3", "application/x-www-form-urlencoded"), says="file"),
    Case("unterminated multipart", raw=(b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"'
                                        b"\r\n\r\n\xff\xd8", "multipart/form-data; boundary=xyz"), says="file"),
    Case("multipart without a boundary", raw=(b"\xff\xd8\xff", "multipart/form-data"), says="boundary"),
    # search parameters
    search_param("k = 0", "k", k="0"),
    search_param("k = -1", "k", k="-1"),
    search_param("k = 10^9", "k", k=str(10**9)),
    search_param("non-numeric k", "k", k="abc"),
    search_param("fractional k", "k", k="1.5"),
    search_param("k with SQL", "k", k="5; DROP TABLE items"),
    search_param("unknown category", "unknown category", category="gowns"),
    search_param("category with SQL injection", "unknown category", category="x' OR '1'='1' --"),
    search_param("category with path traversal", "unknown category", category="../../etc/passwd"),
    # add parameters
    add_param("metadata not JSON", "metadata", metadata="{not json"),
    add_param("metadata a JSON list", "metadata", metadata="[1, 2, 3]"),
    add_param("metadata nested 100,000 deep", "metadata", metadata="[" * 100_000 + "]" * 100_000),
    # valid but unusual images: searched and added normally
    valid_image("animated GIF", animated_gif(), "anim.gif", "image/gif"),
    valid_image("CMYK JPEG", cmyk_jpeg(), "cmyk.jpg", "image/jpeg"),
    valid_image("16-bit greyscale PNG", sixteen_bit_png(), "deep.png"),
    valid_image("1x1 PNG", encode(Image.new("RGB", (1, 1), (190, 30, 40)), "PNG"), "dot.png"),
    valid_image("JPEG with 60 KB of EXIF", huge_exif_jpeg(), "exif.jpg", "image/jpeg"),
    valid_image("PNG with 2 MB of EXIF", huge_exif_png(), "exif.png"),
    valid_image("palette PNG with transparency", transparent_palette_png(), "palette.png"),
    valid_image("PNG missing its end chunk", encode(sample(9, "stripes"), "PNG")[:-12], "noend.png"),
    valid_image("Unicode filename", encode(sample(10), "PNG"), "👗 vestido Größe 日本語 ‮gnp.exe"),
    valid_image("4,000-character filename", encode(sample(11, "checks"), "PNG"), "long" * 1000 + ".png"),
    valid_image("path traversal filename", encode(sample(12), "PNG"), "../../../../tmp/lookalike-evil.png"),
    valid_image("filename with quotes and SQL", encode(sample(13), "PNG"), "a'; DROP TABLE items; --\".png"),
    valid_image("wrong content type", encode(sample(14, "stripes"), "PNG"), "x.png", "application/pdf"),
]


def send(client: httpx.Client, endpoint: str, case: Case, headers: dict[str, str]) -> httpx.Response:
    if case.raw is not None:
        body, content_type = case.raw
        return client.post(endpoint, content=body, headers={**headers, "Content-Type": content_type})
    name = case.file_field or ("file" if endpoint == "/api/search" else "files")
    files = [(name, (case.filename, case.data, case.content_type))] if case.data is not None else None
    return client.post(endpoint, files=files, data=case.form, headers=headers)


def valid_search(client: httpx.Client) -> httpx.Response:
    return client.post("/api/search", files={"file": ("q.jpg", VALID_JPEG, "image/jpeg")}, data={"k": "3"})


@pytest.fixture(scope="module")
def http(live_url):
    with httpx.Client(base_url=live_url, timeout=60) as client:
        yield client


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 40
    assert sum(c.search == "ok" for c in CASES) >= 5 and sum(c.search == "bad" for c in CASES) >= 40


@pytest.mark.parametrize("endpoint", ["/api/search", "/api/items"])
def test_hostile_uploads_get_clear_4xx_and_unusual_images_work(http, auth, endpoint):
    key = "search" if endpoint == "/api/search" else "add"
    problems: list[str] = []
    tried = 0
    for case in CASES:
        expected: Outcome = getattr(case, key)
        if expected is None:
            continue
        tried += 1
        response = send(http, endpoint, case, auth if key == "add" else {})
        label = f"{case.name}: {response.status_code} {response.text[:300]}"
        if expected == "bad":
            body = response.json() if response.headers.get("content-type") == "application/json" else {}
            detail = body.get("detail") if isinstance(body, dict) else None
            if not 400 <= response.status_code < 500:
                problems.append(f"expected a 4xx, got {label}")
            elif not isinstance(detail, str) or len(detail) < 8 or case.says.lower() not in detail.lower():
                problems.append(f"unclear message (wanted {case.says!r}): {label}")
        elif key == "search":
            results = response.json().get("results") if response.status_code == 200 else None
            if not results or len(results) != 5:
                problems.append(f"expected 5 results, got {label}")
        else:
            items = response.json().get("items") if response.status_code == 201 else None
            if not items:
                problems.append(f"expected the image added, got {label}")
            else:
                top = http.post("/api/search", files={"file": (case.filename, case.data, case.content_type)},
                                data={"k": "1"}).json()["results"][0]
                if top["id"] != items[0]["id"] or top["score"] < 0.99:
                    problems.append(f"{case.name}: the added item is not its own image's top result: {top}")
        after = valid_search(http)
        if after.status_code != 200 or len(after.json()["results"]) != 3:
            problems.append(f"after {case.name}, a valid search got {after.status_code}")
    assert tried >= 45
    assert not problems, "\n".join(problems)


def test_uploads_are_stored_by_content_never_by_the_given_name(http, auth, live_settings):
    evil = encode(sample(30), "PNG")
    response = http.post("/api/items", headers=auth,
                         files=[("files", ("../../../escaped-by-name.png", evil, "image/png"))])
    assert response.status_code == 201, response.text
    assert not list(live_settings.home.parent.rglob("escaped-by-name*"))
    stored = [p for p in (live_settings.home / "uploads").iterdir() if p.read_bytes() == evil]
    assert len(stored) == 1 and "escaped" not in stored[0].name


HOSTILE_IDS = ["..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..", "1;DROP TABLE items",
               "1%20OR%201%3D1", "1'--", "-1", "0", "99999999999999999999999", "9223372036854775808", "1e3",
               "0x10", "%00", "abc", "1.5", "%E2%80%AE1", "NaN"]


@pytest.mark.parametrize("suffix", ["", "/image", "/image?size=thumb", "/similar"])
def test_hostile_item_ids_are_404_or_422_with_a_message(http, auth, suffix):
    for item in HOSTILE_IDS:
        for method in ("GET", "DELETE") if suffix == "" else ("GET",):
            response = http.request(method, f"/api/items/{item}{suffix}", headers=auth)
            assert response.status_code in (404, 405, 422), (item, response.status_code, response.text)
            assert response.json()["detail"], (item, response.text)
    assert http.get("/api/items/1").status_code == 200 and http.get("/api/health").status_code == 200

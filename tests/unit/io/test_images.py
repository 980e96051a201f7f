"""Tests of lookalike.io.images: every fixture is generated here, in memory or under tmp_path."""

from __future__ import annotations

import io
import random
import struct
import time
import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageFile

from lookalike.errors import ImageDecodeError, ImageTooLargeError
from lookalike.io.images import SUPPORTED_EXTENSIONS, decode_image

W, H = 40, 30
RED = (200, 30, 40)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
ALL_FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF"]


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def assert_close(pixel: object, expected: tuple[int, ...], tol: int = 12) -> None:
    assert isinstance(pixel, tuple)
    assert all(abs(int(a) - b) <= tol for a, b in zip(pixel, expected, strict=True)), (pixel, expected)


def assert_rgb(img: Image.Image, size: tuple[int, int]) -> None:
    assert img.mode == "RGB"
    assert img.size == size
    assert not isinstance(img, ImageFile.ImageFile)  # a plain, loaded image detached from any file


def png_with_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A few-byte PNG whose IHDR declares ``width x height`` (valid CRCs, no real pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def marked_image(size: tuple[int, int] = (W, H)) -> Image.Image:
    """A red image with a blue 10x10 block in its top-left corner."""
    img = Image.new("RGB", size, RED)
    img.paste(BLUE, (0, 0, 10, 10))
    return img


def exif_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


# ---------------------------------------------------------------------------------------- formats


def test_heif_encoding_is_available_in_installed_wheel() -> None:
    # HEIF tests below depend on it; fail loudly instead of skipping if the wheel lacks an encoder.
    assert pillow_heif.libheif_info()["HEIF"], "pillow_heif was built without a HEIF encoder"


def test_supported_extensions() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"} == set(
        SUPPORTED_EXTENSIONS
    )
    assert isinstance(SUPPORTED_EXTENSIONS, frozenset)
    assert all(ext == ext.lower() and ext.startswith(".") for ext in SUPPORTED_EXTENSIONS)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("as_path", [False, True], ids=["bytes", "path"])
def test_every_format_round_trips(fmt: str, as_path: bool, tmp_path: Path) -> None:
    data = encode(Image.new("RGB", (W, H), RED), fmt)
    if as_path:
        path = tmp_path / f"img.{fmt.lower()}"
        path.write_bytes(data)
        out = decode_image(path)
    else:
        out = decode_image(data)
    assert_rgb(out, (W, H))
    assert_close(out.getpixel((W // 2, H // 2)), RED, tol=16 if fmt == "GIF" else 12)


@pytest.mark.parametrize("kind", [str, bytearray, memoryview])
def test_other_source_types(kind: Callable[..., object], tmp_path: Path) -> None:
    data = encode(Image.new("RGB", (W, H), RED), "PNG")
    source: object
    if kind is str:
        path = tmp_path / "a.png"
        path.write_bytes(data)
        source = str(path)
    else:
        source = kind(data)
    out = decode_image(source)  # type: ignore[arg-type]
    assert out.getpixel((0, 0)) == RED


def test_mpo_multi_picture_jpeg_gives_first_picture() -> None:
    frames = [Image.new("RGB", (W, H), RED), Image.new("RGB", (W, H), BLUE)]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    out = decode_image(data, draft_size=8)
    assert_close(out.getpixel((2, 2)), RED)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG", "TIFF"])
def test_animated_or_multi_frame_gives_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (W, H), c) for c in (RED, BLUE, (0, 255, 0))]
    params: dict[str, object] = {"save_all": True, "append_images": frames[1:]}
    if fmt != "TIFF":
        params["duration"] = 100
    data = encode(frames[0], fmt, **params)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    out = decode_image(data)
    assert_rgb(out, (W, H))
    assert_close(out.getpixel((5, 5)), RED, tol=16)


# -------------------------------------------------------------------------------- orientation

# Where the stored top-left blue block lands after applying each EXIF orientation.
_CORNER = {"TL": (3, 3), "TR": (-4, 3), "BL": (3, -4), "BR": (-4, -4)}
_ORIENTATIONS = {1: "TL", 2: "TR", 3: "BR", 4: "BL", 5: "TL", 6: "TR", 7: "BR", 8: "BL"}


@pytest.mark.parametrize("orientation", sorted(_ORIENTATIONS))
def test_jpeg_exif_orientation_applied(orientation: int) -> None:
    data = encode(marked_image(), "JPEG", quality=95, exif=exif_with_orientation(orientation))
    out = decode_image(data)
    expected_size = (H, W) if orientation >= 5 else (W, H)
    assert_rgb(out, expected_size)
    dx, dy = _CORNER[_ORIENTATIONS[orientation]]
    corner = (dx % out.width, dy % out.height)
    assert_close(out.getpixel(corner), BLUE, tol=30)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "HEIF"])
def test_orientation_6_rotates_once_in_every_format(fmt: str) -> None:
    # Pillow rotates TIFFs itself on load and libheif applies HEIF transforms: never rotate twice.
    data = encode(marked_image(), fmt, exif=exif_with_orientation(6))
    out = decode_image(data)
    assert_rgb(out, (H, W))
    assert_close(out.getpixel((H - 4, 3)), BLUE, tol=30)  # top-left went to top-right


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_exif_does_not_reject_the_pixels() -> None:
    data = encode(Image.new("RGB", (W, H), RED), "JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    out = decode_image(data)
    assert_rgb(out, (W, H))


# ------------------------------------------------------------------------------------ modes


def test_rgba_transparent_becomes_white_and_partial_alpha_blends() -> None:
    img = Image.new("RGBA", (W, H), (255, 0, 0, 255))
    img.putpixel((1, 1), (0, 0, 0, 0))
    img.putpixel((2, 2), (255, 0, 0, 128))
    for fmt, params in (("PNG", {}), ("WEBP", {"lossless": True}), ("TIFF", {})):
        out = decode_image(encode(img, fmt, **params))
        assert out.getpixel((1, 1)) == WHITE, fmt
        assert_close(out.getpixel((2, 2)), (255, 127, 127), tol=2)
        assert out.getpixel((5, 5)) == (255, 0, 0)


def test_heif_with_alpha_composited_on_white() -> None:
    img = Image.new("RGBA", (W, H), (0, 0, 255, 0))
    out = decode_image(encode(img, "HEIF"))
    assert_close(out.getpixel((5, 5)), WHITE, tol=3)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency(fmt: str) -> None:
    img = Image.new("P", (W, H), 0)
    img.putpalette([255, 0, 0, 0, 255, 0])
    img.putpixel((1, 1), 1)
    out = decode_image(encode(img, fmt, transparency=1))
    assert out.getpixel((1, 1)) == WHITE
    assert out.getpixel((5, 5)) == (255, 0, 0)


def test_palette_without_transparency() -> None:
    img = Image.new("P", (W, H), 1)
    img.putpalette([255, 0, 0, 0, 255, 0])
    assert decode_image(encode(img, "PNG")).getpixel((5, 5)) == (0, 255, 0)


def test_png_colour_key_transparency_in_l_and_rgb() -> None:
    grey = Image.new("L", (W, H), 100)
    grey.putpixel((3, 3), 7)
    out = decode_image(encode(grey, "PNG", transparency=100))
    assert out.getpixel((0, 0)) == WHITE
    assert out.getpixel((3, 3)) == (7, 7, 7)
    rgb = Image.new("RGB", (W, H), (1, 2, 3))
    assert decode_image(encode(rgb, "PNG", transparency=(1, 2, 3))).getpixel((0, 0)) == WHITE


def test_la_mode() -> None:
    img = Image.new("LA", (W, H), (50, 255))
    img.putpixel((1, 1), (0, 0))
    out = decode_image(encode(img, "PNG"))
    assert out.getpixel((5, 5)) == (50, 50, 50)
    assert out.getpixel((1, 1)) == WHITE


def test_grayscale_l() -> None:
    out = decode_image(encode(Image.new("L", (W, H), 77), "JPEG"))
    assert_close(out.getpixel((5, 5)), (77, 77, 77), tol=2)


def test_one_bit() -> None:
    img = Image.new("1", (W, H), 1)
    img.putpixel((1, 1), 0)
    for fmt in ("PNG", "BMP", "TIFF"):
        out = decode_image(encode(img, fmt))
        assert out.getpixel((1, 1)) == (0, 0, 0), fmt
        assert out.getpixel((5, 5)) == WHITE, fmt


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk(fmt: str) -> None:
    # Pillow writes Adobe (inverted) CMYK JPEGs and reads them back un-inverted.
    data = encode(Image.new("CMYK", (W, H), (0, 255, 255, 0)), fmt)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    assert_close(decode_image(data).getpixel((5, 5)), (255, 0, 0), tol=8)


def test_png_16_bit_scaled_not_clipped() -> None:
    arr = np.full((H, W), 65535, np.uint16)
    arr[0, 0] = 32768
    arr[0, 1] = 257
    arr[0, 2] = 0
    data = encode(Image.fromarray(arr), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    out = decode_image(data)
    assert out.getpixel((5, 5)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (128, 128, 128)
    assert out.getpixel((1, 0)) == (1, 1, 1)
    assert out.getpixel((2, 0)) == (0, 0, 0)


def test_tiff_16_bit_big_endian() -> None:
    img = Image.frombytes("I;16B", (W, H), b"\x80\x00" * (W * H))
    data = encode(img, "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I;16B"
    assert decode_image(data).getpixel((0, 0)) == (128, 128, 128)


def test_32_bit_integer_mode_i() -> None:
    in_16_bit_range = np.full((H, W), 65535, np.int32)
    data = encode(Image.fromarray(in_16_bit_range), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    assert decode_image(data).getpixel((0, 0)) == WHITE
    # Outside [0, 65535]: stretched from minimum to maximum.
    wide = np.zeros((H, W), np.int32)
    wide[:, W // 2 :] = 1_000_000
    wide[0, 0] = -1_000_000
    out = decode_image(encode(Image.fromarray(wide), "TIFF"))
    assert out.getpixel((0, 0)) == (0, 0, 0)
    assert out.getpixel((1, 1)) == (128, 128, 128)
    assert out.getpixel((W - 1, 1)) == WHITE


def test_float_mode_f() -> None:
    unit = np.full((H, W), 0.5, np.float32)
    unit[0, 0] = 1.0
    unit[0, 1] = np.nan
    data = encode(Image.fromarray(unit), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    out = decode_image(data)
    assert out.getpixel((5, 5)) == (128, 128, 128)
    assert out.getpixel((0, 0)) == WHITE
    assert out.getpixel((1, 0)) == (0, 0, 0)
    byte_range = np.full((H, W), 200.0, np.float32)
    assert decode_image(encode(Image.fromarray(byte_range), "TIFF")).getpixel((0, 0)) == (200, 200, 200)
    wide = np.linspace(-5000, 5000, W * H, dtype=np.float32).reshape(H, W)
    out = decode_image(encode(Image.fromarray(wide), "TIFF"))
    assert out.getpixel((0, 0)) == (0, 0, 0)
    assert out.getpixel((W - 1, H - 1)) == WHITE


# ------------------------------------------------------------------------------ size limits


def test_decompression_bomb_header_refused_quickly() -> None:
    data = png_with_header(50_000, 50_000)
    assert len(data) < 100
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=r"2,500,000,000 pixels.*40,000,000"):
        decode_image(data)
    assert time.perf_counter() - start < 0.5


def test_header_over_our_limit_but_under_pillows_names_size_and_limit() -> None:
    with pytest.raises(ImageTooLargeError, match=r"10000x5000 = 50,000,000 pixels.*40,000,000"):
        decode_image(png_with_header(10_000, 5_000))


def test_pillow_bomb_warning_raised_as_error_is_converted() -> None:
    # 100 M pixels makes Pillow warn inside Image.open; with warnings as errors it raises the warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageTooLargeError, match="100,000,000 pixels"):
            decode_image(png_with_header(10_000, 10_000))


def test_max_pixels_refuses_a_normal_image_and_allows_exact_limit() -> None:
    data = encode(Image.new("RGB", (W, H), RED), "PNG")
    with pytest.raises(ImageTooLargeError, match=r"40x30 = 1,200 pixels.*1,199"):
        decode_image(data, max_pixels=W * H - 1)
    assert decode_image(data, max_pixels=W * H).size == (W, H)


def test_global_pillow_state_untouched() -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    decode_image(encode(Image.new("RGB", (W, H), RED), "JPEG"), max_pixels=10**9)
    with pytest.raises(ImageTooLargeError):
        decode_image(png_with_header(10_000, 5_000))
    assert before == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


def test_invalid_arguments() -> None:
    data = encode(Image.new("RGB", (W, H), RED), "PNG")
    with pytest.raises(ValueError):
        decode_image(data, max_pixels=0)
    with pytest.raises(ValueError):
        decode_image(data, draft_size=0)
    with pytest.raises(TypeError):
        decode_image(12345)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ draft


def test_jpeg_draft_decodes_smaller_but_keeps_short_side() -> None:
    data = encode(Image.new("RGB", (1600, 1200), RED), "JPEG")
    out = decode_image(data, draft_size=224)
    assert_rgb(out, out.size)
    assert out.size == (400, 300)  # DCT scale 1/4; 1/8 would give 200x150
    assert min(out.size) >= 224
    assert_close(out.getpixel((10, 10)), RED)
    assert decode_image(data).size == (1600, 1200)


@pytest.mark.parametrize("size", [(1600, 1200), (1203, 907), (500, 2000), (225, 3000)])
@pytest.mark.parametrize("draft_size", [1, 100, 224, 256, 300, 599, 5000])
def test_jpeg_draft_short_side_never_below_request(size: tuple[int, int], draft_size: int) -> None:
    data = encode(Image.new("L", size, 90), "JPEG")
    width, height = decode_image(data, draft_size=draft_size).size
    assert width <= size[0] and height <= size[1]
    assert min(width, height) >= min(draft_size, min(size))
    # The scale picked is the largest allowed: halving again would go under the request.
    if min(size) >= 2 * draft_size:
        eighth = (-(-size[0] // 8), -(-size[1] // 8))  # 1/8 (rounded up) is libjpeg's smallest scale
        assert min(width, height) < 2 * draft_size or (width, height) == eighth


def test_draft_with_orientation_and_non_jpeg_ignored() -> None:
    rotated = encode(Image.new("RGB", (1600, 1200), RED), "JPEG", exif=exif_with_orientation(6))
    assert decode_image(rotated, draft_size=224).size == (300, 400)
    png = encode(Image.new("RGB", (800, 600), RED), "PNG")
    assert decode_image(png, draft_size=224).size == (800, 600)


# ------------------------------------------------------------------------------- bad inputs

_HTML = b"<!DOCTYPE html>\n<html><head><title>404</title></head><body>Not found</body></html>"
_PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><rect width="40" height="30"/></svg>'
_XML_SVG = b'<?xml version="1.0" encoding="UTF-8"?>\n' + _SVG


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty input"),
        (b"hello", "not a recognised image format"),
        (_HTML, "HTML"),
        (_PDF, "PDF"),
        (_SVG, "SVG"),
        (_XML_SVG, "SVG"),
        (bytes(range(256)) * 4, "not a recognised image format"),
        (b"\x89PNG\r\n\x1a\n", "corrupt PNG"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "corrupt"),
        (b"GIF89a\x01", "corrupt GIF"),
    ],
    ids=["empty", "hello", "html", "pdf", "svg", "xml-svg", "binary", "png-magic", "jpeg-magic", "gif-magic"],
)
def test_non_images_raise_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["ICO", "PCX", "TGA", "PPM", "AVIF"])
def test_formats_pillow_knows_but_we_do_not_accept(fmt: str) -> None:
    data = encode(Image.new("RGB", (W, H), RED), fmt)
    with pytest.raises(ImageDecodeError, match="not a recognised image format|unsupported image format"):
        decode_image(data)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_truncated_to_half_raises(fmt: str) -> None:
    data = encode(Image.effect_noise((400, 300), 60).convert("RGB"), fmt)
    with pytest.raises(ImageDecodeError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def _corrupt_middle(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes(b ^ 0x5A for b in data[mid : mid + 64]) + data[mid + 64 :]


def test_corrupt_png_middle_raises() -> None:
    data = encode(Image.effect_noise((400, 300), 60).convert("RGB"), "PNG")
    with pytest.raises(ImageDecodeError, match="truncated or corrupt"):
        decode_image(_corrupt_middle(data))


def test_corrupt_jpeg_middle_never_escapes_other_errors() -> None:
    # libjpeg resynchronises on damaged entropy-coded data and Pillow returns an image with
    # garbled pixels and no error; the guarantee is only "an RGB image or ImageDecodeError".
    data = encode(Image.effect_noise((400, 300), 60).convert("RGB"), "JPEG")
    try:
        out = decode_image(_corrupt_middle(data))
    except ImageDecodeError:
        return
    assert_rgb(out, (400, 300))


@pytest.mark.filterwarnings("ignore")  # Pillow warns about some corrupt EXIF/TIFF metadata
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_fuzzed_bytes_give_rgb_or_decode_error(fmt: str) -> None:
    data = encode(Image.linear_gradient("L").resize((W, H)).convert("RGB"), fmt)
    for seed in range(40):
        rnd = random.Random(seed)
        damaged = bytearray(data)
        for _ in range(rnd.randint(1, 8)):
            damaged[rnd.randrange(len(damaged))] = rnd.randrange(256)
        if seed % 3 == 0:
            damaged = damaged[: rnd.randrange(len(damaged))]
        try:
            out = decode_image(bytes(damaged))
        except ImageDecodeError:
            continue
        assert out.mode == "RGB"


def test_zero_size_header_raises() -> None:
    for width, height in ((0, 10), (10, 0)):
        with pytest.raises(ImageDecodeError):
            decode_image(png_with_header(width, height))


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="file not found"):
        decode_image(tmp_path / "nope.jpg")


def test_directory_path(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="not a file"):
        decode_image(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(ImageDecodeError, match="empty file"):
        decode_image(path)


def test_truncated_file_on_disk(tmp_path: Path) -> None:
    data = encode(Image.effect_noise((200, 150), 60).convert("RGB"), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode_image(path)


# --------------------------------------------------------------------------------- plumbing


def test_result_outlives_the_file(tmp_path: Path) -> None:
    for fmt in ("JPEG", "GIF", "TIFF"):  # GIF and TIFF keep their file open for later frames
        path = tmp_path / f"a.{fmt.lower()}"
        path.write_bytes(encode(Image.new("RGB", (W, H), RED), fmt))
        out = decode_image(path)
        path.unlink()
        assert_rgb(out, (W, H))
        assert_close(out.resize((4, 3)).getpixel((1, 1)), RED, tol=16)


def test_concurrent_decoding() -> None:
    sources = [encode(Image.new("RGB", (W, H), RED), fmt) for fmt in ALL_FORMATS] * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(decode_image, sources))
    for out in results:
        assert_rgb(out, (W, H))
        assert_close(out.getpixel((5, 5)), RED, tol=16)

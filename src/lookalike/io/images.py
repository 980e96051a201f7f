"""The one place where images entering Lookalike are decoded (catalog files and uploads).

:func:`decode_image` turns bytes or a path into a loaded 8-bit ``RGB`` :class:`PIL.Image.Image`:

* formats: JPEG (and MPO, the multi-picture JPEG many cameras write), PNG, WebP, GIF, BMP, TIFF and
  HEIC/HEIF (through ``pillow_heif``); other formats Pillow knows (EPS, PSD, ICO, ...) are refused;
  multi-frame files give their first frame;
* the EXIF orientation is applied (HEIF transforms are applied by libheif itself);
* every pixel mode becomes ``RGB``; transparency is composited on white; 16-bit and float data is
  scaled to 8 bits rather than clipped;
* the pixel count declared in the header is checked before any pixel is decoded;
* every failure is an :class:`~lookalike.errors.ImageDecodeError` with a short reason.

Pillow's process-wide settings (``MAX_IMAGE_PIXELS``, ``LOAD_TRUNCATED_IMAGES``) are left alone, so
truncated files always fail. Pillow's own bomb check still runs inside ``Image.open`` (error above
``2 * MAX_IMAGE_PIXELS``, about 179 M pixels, warning above half that); both are reported as
:class:`~lookalike.errors.ImageTooLargeError`, which means ``max_pixels`` cannot usefully exceed
Pillow's limit.
"""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import IO, Final

import numpy as np
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from lookalike.errors import ImageDecodeError, ImageTooLargeError

logger = logging.getLogger(__name__)

__all__ = ["SUPPORTED_EXTENSIONS", "decode_image", "decode_pixels", "sniff_image"]

SUPPORTED_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
)
"""File extensions (lower case, with the dot) that folder scanning treats as images."""

DEFAULT_MAX_PIXELS: Final[int] = 40_000_000

try:
    import pillow_heif

    # Thumbnails, depth and auxiliary images are never used here: skip parsing them.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    _HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - pillow_heif is a declared dependency
    logger.warning("pillow_heif is not installed: HEIC/HEIF images cannot be decoded")
    _HEIF_AVAILABLE = False

try:
    import simplejpeg
except ImportError:  # pragma: no cover - simplejpeg is a declared dependency; Pillow decodes everything without it
    simplejpeg = None

# Pillow format ids Image.open may use; an allowlist keeps the other plugins' parsers out of reach.
# ("JPEG" also yields MPO images: the JPEG opener adopts them, MPO has no opener of its own.)
_ALLOWED_FORMATS: Final[tuple[str, ...]] = (
    "JPEG",
    "PNG",
    "WEBP",
    "GIF",
    "BMP",
    "TIFF",
    *(("HEIF",) if _HEIF_AVAILABLE else ()),
)

_WHITE: Final[tuple[int, int, int]] = (255, 255, 255)
_HIGH_BIT_MODES: Final[frozenset[str]] = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})

# Leading bytes of image formats: a file starting like this but unreadable is corrupt, not foreign.
_IMAGE_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_BMP_HEADER_SIZES: Final[frozenset[int]] = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_HEIF_BRANDS: Final[frozenset[bytes]] = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
)


def decode_image(
    source: bytes | str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
) -> Image.Image:
    """Decode ``source`` (encoded bytes, or a file path) into a loaded ``RGB`` image.

    ``max_pixels`` bounds ``width * height`` as declared in the header; it is checked before any
    pixel is decoded and raises :class:`ImageTooLargeError` when exceeded.

    ``draft_size`` lets JPEG decoding use libjpeg's DCT scaling (1/2, 1/4 or 1/8) for speed. Pillow's
    ``draft(mode, (rw, rh))`` picks the largest scale ``s`` in {8, 4, 2, 1} with
    ``s <= min(W // rw, H // rh)`` and decodes to ``ceil(W / s) x ceil(H / s)``; as ``s * rw <= W``
    and ``s * rh <= H``, requesting the square ``(draft_size, draft_size)`` keeps *both* sides, so
    the shorter one, at least ``draft_size`` (an image already smaller is decoded at full size).
    Being square, the request is unaffected by a later EXIF rotation. The size limit still applies
    to the full declared size. Other formats ignore ``draft_size``.

    Raises :class:`ImageDecodeError` (or :class:`ImageTooLargeError`) for every unreadable input.
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if draft_size is not None and draft_size < 1:
        raise ValueError(f"draft_size must be positive, got {draft_size}")

    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise ImageDecodeError("empty input: no image data")
        return _decode_stream(io.BytesIO(data), max_pixels=max_pixels, draft_size=draft_size)

    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            fh = path.open("rb")
        except OSError as exc:
            raise _open_failure(path, exc) from None
        with fh:
            try:
                size = os.fstat(fh.fileno()).st_size
            except OSError as exc:  # pragma: no cover - fstat on an open file hardly fails
                raise ImageDecodeError(f"cannot read {path}: {exc.strerror or exc}") from None
            if size == 0:
                raise ImageDecodeError(f"empty file: {path}")
            return _decode_stream(fh, max_pixels=max_pixels, draft_size=draft_size)

    raise TypeError(f"source must be bytes or a path, not {type(source).__name__}")


def decode_pixels(
    source: bytes | str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
) -> np.ndarray:
    """The pixels :func:`decode_image` gives for ``source``, as an ``(H, W, 3)`` uint8 array; same errors.

    A plain JPEG (YCbCr or RGB, upright, one picture, both sides at least 16 pixels) decoded with ``draft_size`` skips
    Pillow: libjpeg-turbo (through ``simplejpeg``) reads its header and decodes it at the very DCT scale Pillow's draft
    would pick (the ``decode_image`` docstring), with the same integer IDCT and fancy upsampling, so the pixels are the
    same (``tests/unit/io/test_decode_pixels.py`` compares them) and come straight into a numpy array, without Pillow's
    line-by-line copies. Everything else, and whatever that decoder refuses (it also stops at libjpeg's warnings),
    goes through :func:`decode_image`, which gives the verdict.
    """
    if draft_size is not None and simplejpeg is not None:
        data: bytes | None = None
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
        elif isinstance(source, str | os.PathLike):
            try:
                data = Path(source).read_bytes()
            except OSError:
                data = None  # decode_image says why
        if data and data.startswith(b"\xff\xd8\xff"):
            pixels = _decode_plain_jpeg(data, max_pixels=max_pixels, draft_size=draft_size)
            if pixels is not None:
                return pixels
            source = data
    return np.asarray(decode_image(source, max_pixels=max_pixels, draft_size=draft_size))


_FAST_JPEG_MIN_SIDE: Final[int] = 16  # below that, another DCT scale could give the same output size
_SOS, _APP1, _APP2 = 0xDA, 0xE1, 0xE2  # JPEG markers: start of scan, EXIF or XMP, ICC profile or MPF index


def _decode_plain_jpeg(data: bytes, *, max_pixels: int, draft_size: int) -> np.ndarray | None:
    """``data`` decoded by libjpeg-turbo at Pillow's draft scale, or None when it is not a plain JPEG (or anything
    fails): then :func:`decode_image` decides.

    Plain: three colour components (Pillow's ``RGB`` mode), both sides at least 16 pixels, within ``max_pixels``,
    upright (see :func:`_upright_single_picture`). libjpeg-turbo reads the header rather than Pillow, whose parser
    cost 3-8% of the decode (BENCHMARKS.md).
    """
    if not _upright_single_picture(data):
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except Exception:  # noqa: BLE001 - decode_image reports it
        return None
    if colorspace not in ("YCbCr", "RGB") or min(width, height) < _FAST_JPEG_MIN_SIDE or width * height > max_pixels:
        return None
    # Pillow's draft: the largest s in {8, 4, 2, 1} with s <= min(W // size, H // size), output ceil(W / s) x ...
    fits = min(width // draft_size, height // draft_size)
    scale = next(s for s in (8, 4, 2, 1) if s <= fits or s == 1)
    out_w, out_h = -(-width // scale), -(-height // scale)
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_factor=scale, min_width=out_w, min_height=out_h)
    except Exception:  # noqa: BLE001 - e.g. a libjpeg warning (strict mode); Pillow may still accept the file
        return None
    return pixels if pixels.shape == (out_h, out_w, 3) else None


def _upright_single_picture(data: bytes) -> bool:
    """Whether the JPEG's segments before its image data are well formed, turn nothing (no EXIF orientation other
    than 1, no orientation in XMP) and hold no multi-picture index (which Pillow opens as MPO)."""
    position = 2  # after the start-of-image marker
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte before the marker
            position += 1
            continue
        if marker == _SOS:
            return True
        end = position + 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        payload = data[position + 4 : end]
        if (marker == _APP1 and not _upright(payload)) or (marker == _APP2 and payload.startswith(b"MPF\x00")):
            return False
        position = end
    return False


def _upright(app1: bytes) -> bool:
    """Whether an APP1 segment leaves the picture as stored: EXIF whose orientation is 1 or absent (read by Pillow),
    or anything else that does not mention an orientation (XMP may, as ``tiff:Orientation``)."""
    if not app1.startswith(b"Exif\x00\x00"):
        return b"Orientation" not in app1
    exif = Image.Exif()
    try:
        exif.load(app1)
    except Exception:  # noqa: BLE001 - unreadable EXIF: decode_image's path ignores it, slowly
        return False
    return exif.get(ExifTags.Base.Orientation, 1) == 1


def _open_failure(path: Path, exc: OSError) -> ImageDecodeError:
    """The reason a file could not be opened or read, as a typed error."""
    if isinstance(exc, FileNotFoundError):
        return ImageDecodeError(f"file not found: {path}")
    if isinstance(exc, IsADirectoryError):
        return ImageDecodeError(f"not a file: {path}")
    if isinstance(exc, PermissionError):
        return ImageDecodeError(f"permission denied: {path}")
    return ImageDecodeError(f"cannot read {path}: {exc.strerror or exc}")


def read_image_file(path: Path) -> bytes:
    """A file's bytes, for hashing before decoding; unreadable files raise ImageDecodeError."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _open_failure(Path(path), exc) from None


def _decode_stream(fh: IO[bytes], *, max_pixels: int, draft_size: int | None) -> Image.Image:
    """Open, check, load and normalise the image in ``fh``; the caller owns ``fh``."""
    try:
        img = Image.open(fh, formats=_ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large_from_pillow(exc, max_pixels) from None
    except UnidentifiedImageError:
        raise ImageDecodeError(_unrecognised_reason(fh)) from None
    except Exception as exc:  # noqa: BLE001 - plugins raise anything on malformed headers
        raise ImageDecodeError(f"truncated or corrupt image header: {_describe(exc)}") from None

    with img:
        width, height = img.size
        if width <= 0 or height <= 0:
            raise ImageDecodeError(f"image has zero size ({width}x{height})")
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"image too large: {width}x{height} = {width * height:,} pixels "
                f"exceeds the limit of {max_pixels:,} pixels"
            )
        try:
            if draft_size is not None and isinstance(img, JpegImagePlugin.JpegImageFile):
                img.draft("RGB", (draft_size, draft_size))
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_large_from_pillow(exc, max_pixels) from None
        except Exception as exc:  # noqa: BLE001 - decoders raise OSError, SyntaxError, ValueError...
            raise ImageDecodeError(f"truncated or corrupt image data: {_describe(exc)}") from None

        _apply_orientation(img)
        try:
            rgb = _to_rgb(img)
        except Exception as exc:  # noqa: BLE001 - e.g. a mode Pillow cannot convert
            raise ImageDecodeError(f"cannot convert {img.mode} pixels to RGB: {_describe(exc)}") from None
        if rgb is img:
            rgb = img.copy()  # detach from the file object, which `with img` closes
    return rgb


def _apply_orientation(img: Image.Image) -> None:
    """Transpose the loaded ``img`` in place by its EXIF (or XMP) orientation; unreadable metadata is ignored."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception as exc:  # noqa: BLE001 - broken metadata must not reject good pixels
        logger.debug("ignoring unreadable EXIF metadata: %s", _describe(exc))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert a loaded image of any mode to 8-bit RGB (may return ``img`` itself if already RGB)."""
    mode = img.mode
    if mode in _HIGH_BIT_MODES:
        return _scale_to_8bit(img).convert("RGB")
    has_alpha = any(band in ("A", "a") for band in img.getbands())
    if has_alpha or "transparency" in img.info:
        rgba = img.convert("RGBA")  # also applies P/L/RGB colour-key transparency
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode == "RGB":
        return img
    return img.convert("RGB")  # 1, L, P, CMYK (Adobe inversion done by the JPEG plugin), YCbCr...


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    """Map a single-band 16-bit, 32-bit integer or float image to 8-bit ``L``.

    Integer data within [0, 65535] is read as 16-bit (65535 -> 255); float data within [0, 1] is
    scaled by 255 and within [0, 255] kept; anything else is stretched from its minimum to its maximum.
    """
    arr = np.asarray(img)
    if img.mode != "F" and arr.size and int(arr.min()) >= 0 and int(arr.max()) <= 65535:
        scaled = (arr.astype(np.uint32) * 255 + 32767) // 65535
        return Image.fromarray(scaled.astype(np.uint8))
    values = arr.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        values = np.where(finite, values, 0.0)
    lo = float(values.min()) if values.size else 0.0
    hi = float(values.max()) if values.size else 0.0
    if img.mode == "F" and lo >= 0.0 and hi <= 1.0:
        values = values * 255.0
    elif not (img.mode == "F" and lo >= 0.0 and hi <= 255.0):
        values = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def sniff_image(data: bytes) -> str:
    """The supported image format the bytes are, by their signature ("JPEG", "PNG", ...); ImageDecodeError saying
    what they look like instead (an HTML page, text, ...) when they are none."""
    kind = _image_kind(data[:512])
    if kind is None:
        raise ImageDecodeError(_unrecognised_reason(io.BytesIO(data[:512])))
    return kind


def _unrecognised_reason(fh: IO[bytes]) -> str:
    """A short reason for data no allowed image plugin recognised, guessed from its first bytes."""
    try:
        fh.seek(0)
        head = fh.read(512)
    except (OSError, ValueError):
        head = b""
    name = _image_kind(head)
    if name is not None:
        return f"truncated or corrupt {name} image: header unreadable"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"%pdf"):
        kind = "a PDF document"
    elif text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        kind = "an SVG drawing (vector images are not supported)"
    elif text.startswith((b"<!doctype html", b"<html")):
        kind = "an HTML page"
    elif head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "unsupported image format: AVIF"
    elif _looks_like_text(head):
        kind = "text"
    else:
        return "not a recognised image format"
    return f"not a recognised image format (looks like {kind})"


def _image_kind(head: bytes) -> str | None:
    """The supported format ``head`` claims to be by its signature, if any."""
    for magic, name in _IMAGE_MAGIC:
        if head.startswith(magic):
            return name
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    return None


def _looks_like_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not merely a character cut at the end of ``head``
            return False
        decoded = head[: exc.start].decode("utf-8")
    return all(ch.isprintable() or ch in "\t\r\n" for ch in decoded)


def _too_large_from_pillow(exc: Exception, max_pixels: int) -> ImageTooLargeError:
    """Restate Pillow's own decompression-bomb error or warning against ``max_pixels``."""
    text = str(exc)
    size = re.search(r"\((\d+) pixels\)", text)
    pillow_limit = re.search(r"limit of (\d+) pixels", text)
    described = f"{int(size.group(1)):,} pixels" if size else "its pixel count"
    if pillow_limit and int(pillow_limit.group(1)) < max_pixels:
        limit = f"{int(pillow_limit.group(1)):,} pixels (Pillow's decompression-bomb limit)"
    else:
        limit = f"{max_pixels:,} pixels"
    return ImageTooLargeError(f"image too large: {described} exceeds the limit of {limit}")


def _describe(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def thumbnail_jpeg(source: bytes | str | os.PathLike[str], size: int, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """A JPEG of the image fitted into ``size`` x ``size`` (small images are not enlarged)."""
    image = decode_image(source, max_pixels=max_pixels, draft_size=size)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()

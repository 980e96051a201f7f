"""decode_pixels: libjpeg-turbo's fast path for plain JPEGs gives exactly decode_image's pixels; the rest falls back."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lookalike.errors import ImageDecodeError, ImageTooLargeError
from lookalike.io.images import _decode_plain_jpeg, decode_image, decode_pixels


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A product-photo-like picture: a gradient, a coloured block and noise (so the JPEG has real AC data)."""
    rng = np.random.default_rng(seed)
    pixels = np.linspace(30, 220, width)[None, :, None] + rng.normal(0, 6, (height, width, 3))
    pixels[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = (180, 40, 60)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def jpeg(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **params)
    return buffer.getvalue()


def reference(data: bytes | str, draft_size: int | None) -> np.ndarray:
    return np.asarray(decode_image(data, draft_size=draft_size))


@pytest.mark.parametrize("size", [(600, 800), (601, 799), (800, 600), (300, 300), (113, 900), (40, 30)])
@pytest.mark.parametrize("params", [{"quality": 90}, {"quality": 95, "subsampling": 0},
                                    {"quality": 80, "subsampling": 1}, {"quality": 90, "progressive": True}])
@pytest.mark.parametrize("draft_size", [112, 224, None])
def test_plain_jpegs_decode_to_decode_images_pixels(size, params, draft_size):
    data = jpeg(photo(*size), **params)
    pixels = decode_pixels(data, draft_size=draft_size)
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 3
    np.testing.assert_array_equal(pixels, reference(data, draft_size))  # bit for bit


def test_the_fast_path_takes_catalog_jpegs():
    data = jpeg(photo(600, 800))
    fast = _decode_plain_jpeg(data, max_pixels=10**8, draft_size=112)
    assert fast is not None and fast.shape == (200, 150, 3)  # Pillow's draft scale: 1/4


def test_exif_rotated_jpeg_is_rotated_like_decode_image():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = jpeg(photo(600, 400), exif=exif.tobytes())
    assert _decode_plain_jpeg(data, max_pixels=10**8, draft_size=112) is None  # Pillow's path applies it
    pixels = decode_pixels(data, draft_size=112)
    assert pixels.shape == (300, 200, 3)  # scale 1/2 (400 // 112 = 3), then turned upright
    np.testing.assert_array_equal(pixels, reference(data, 112))


def test_grayscale_jpeg_and_png_go_through_pillow():
    gray = jpeg(photo(200, 300).convert("L"))
    np.testing.assert_array_equal(decode_pixels(gray, draft_size=112), reference(gray, 112))
    buffer = io.BytesIO()
    photo(64, 48).save(buffer, format="PNG")
    png = buffer.getvalue()
    pixels = decode_pixels(png, draft_size=112)
    assert pixels.shape == (48, 64, 3)
    np.testing.assert_array_equal(pixels, reference(png, 112))


def test_a_path_decodes_like_its_bytes(tmp_path):
    path = tmp_path / "item.jpg"
    path.write_bytes(jpeg(photo(600, 800)))
    np.testing.assert_array_equal(decode_pixels(path, draft_size=112), reference(path.read_bytes(), 112))
    np.testing.assert_array_equal(decode_pixels(str(path), draft_size=112), reference(str(path), 112))


def test_unreadable_inputs_fail_as_decode_image_does(tmp_path):
    data = jpeg(photo(600, 800))
    corrupt = data[:200] + bytes(range(256)) * 8 + data[2500:]
    truncated = data[: len(data) // 2]
    for bad in (corrupt, truncated, b"\xff\xd8\xff", b"not an image at all"):
        with pytest.raises(ImageDecodeError) as expected:
            decode_image(bad, draft_size=112)
        with pytest.raises(ImageDecodeError) as got:
            decode_pixels(bad, draft_size=112)
        assert str(got.value) == str(expected.value)
    with pytest.raises(ImageDecodeError, match="empty input"):
        decode_pixels(b"", draft_size=112)
    with pytest.raises(ImageDecodeError, match="file not found"):
        decode_pixels(tmp_path / "missing.jpg", draft_size=112)


def test_pixel_limit_is_checked_before_decoding():
    data = jpeg(photo(600, 800))
    with pytest.raises(ImageTooLargeError):
        decode_pixels(data, max_pixels=600 * 800 - 1, draft_size=112)


def test_prepare_gives_the_same_tensor_for_an_image_and_its_pixels(extractor):
    image = decode_image(jpeg(photo(600, 800)), draft_size=224)
    np.testing.assert_array_equal(extractor.prepare(np.asarray(image)), extractor.prepare(image))
    with pytest.raises(ValueError, match="uint8"):
        extractor.prepare(np.zeros((10, 10, 3), np.float32))


def test_upright_exif_keeps_the_fast_path():
    exif = Image.Exif()
    exif[0x0112] = 1  # as stored
    exif[0x010F] = "Camera maker"
    data = jpeg(photo(600, 800), exif=exif.tobytes(), icc_profile=b"\0" * 200)
    fast = _decode_plain_jpeg(data, max_pixels=10**8, draft_size=112)
    assert fast is not None
    np.testing.assert_array_equal(fast, reference(data, 112))


def test_xmp_orientation_is_turned_like_decode_image():
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    data = jpeg(photo(600, 400), xmp=xmp)
    assert _decode_plain_jpeg(data, max_pixels=10**8, draft_size=112) is None
    pixels = decode_pixels(data, draft_size=112)
    assert pixels.shape == (300, 200, 3)  # turned upright
    np.testing.assert_array_equal(pixels, reference(data, 112))


def test_multi_picture_and_cmyk_jpegs_go_through_pillow():
    buffer = io.BytesIO()
    photo(600, 800).save(buffer, format="MPO", save_all=True, append_images=[photo(600, 800, seed=1)])
    mpo = buffer.getvalue()
    cmyk = jpeg(photo(600, 800).convert("CMYK"))
    for data in (mpo, cmyk):
        assert _decode_plain_jpeg(data, max_pixels=10**8, draft_size=112) is None
        np.testing.assert_array_equal(decode_pixels(data, draft_size=112), reference(data, 112))


@pytest.mark.parametrize("exif", [b"Exif\0\0II*\0" + b"\xff" * 40, b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12",
                                  b"Exif\0\0"])
def test_unreadable_exif_decodes_like_decode_image(exif):
    data = jpeg(photo(600, 800), exif=exif)
    np.testing.assert_array_equal(decode_pixels(data, draft_size=112), reference(data, 112))


def _with_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    """``data`` with a segment inserted after its first one (JFIF's APP0)."""
    after_app0 = 4 + int.from_bytes(data[4:6], "big")
    segment = bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload
    return data[:after_app0] + segment + data[after_app0:]


@pytest.mark.parametrize("variant", ["restart markers", "comment", "optimized tables", "photoshop segment",
                                     "fill byte"])
def test_encoders_extras_keep_the_fast_path(variant):
    image = photo(600, 800)
    data = {"restart markers": lambda: jpeg(image, restart_marker_blocks=4),
            "comment": lambda: jpeg(image, comment=b"made by a shop"),
            "optimized tables": lambda: jpeg(image, optimize=True),
            "photoshop segment": lambda: _with_segment(jpeg(image), 0xED, b"Photoshop 3.0\0" + b"8BIM" * 4),
            "fill byte": lambda: jpeg(image)[:2] + b"\xff" + jpeg(image)[2:]}[variant]()
    fast = _decode_plain_jpeg(data, max_pixels=10**8, draft_size=112)
    assert fast is not None
    np.testing.assert_array_equal(fast, reference(data, 112))

"""Generated test data. Small garment-like test images: each category has a distinct shape, with random colour,
size and position, so a real backbone separates them; and tiny Fashion-MNIST look-alike idx files."""

from __future__ import annotations

import gzip
import io
import random
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from lookalike.data import fashion_mnist as fm

CATEGORIES = ("circles", "stripes", "checks")


def make_image(category: str, seed: int, size: int = 96) -> Image.Image:
    rng = random.Random(f"{category}-{seed}")
    background = tuple(rng.randint(200, 255) for _ in range(3))
    colour = tuple(rng.randint(0, 140) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    if category == "circles":
        r = rng.randint(size // 5, size // 3)
        cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif category == "stripes":
        step = rng.randint(8, 16)
        for y in range(rng.randint(0, step), size, step):
            draw.rectangle((0, y, size, y + step // 2), fill=colour)
    elif category == "checks":
        step = rng.randint(10, 20)
        for y in range(0, size, step):
            for x in range(0, size, step):
                if (x // step + y // step) % 2 == 0:
                    draw.rectangle((x, y, x + step - 1, y + step - 1), fill=colour)
    else:
        raise ValueError(category)
    return image


def studio_photo(garment: Image.Image, frame: tuple[int, int], scale: float,
                 background: tuple[int, int, int] = (236, 232, 228), seed: int = 0, noise: float = 4.0) -> np.ndarray:
    """``garment`` (on ``background``) photographed at ``scale`` of the frame's width, centred, with sensor noise."""
    side = round(frame[0] * scale)
    canvas = Image.new("RGB", frame, background)
    canvas.paste(garment.resize((side, side), Image.Resampling.BICUBIC), ((frame[0] - side) // 2,
                                                                          (frame[1] - side) // 2))
    grain = np.random.default_rng(seed).normal(0, noise, (frame[1], frame[0], 1))
    return np.clip(np.asarray(canvas, np.float32) + grain, 0, 255).astype(np.uint8)


def circles_or_stripes() -> Image.Image:
    """Circles blended with stripes: a query between the two categories (each comes back among its 6 nearest)."""
    return Image.blend(make_image("circles", 400), make_image("stripes", 400), 0.35)


PRODUCT_CATEGORIES = ("tees", "dresses", "trousers")
_SILHOUETTES = {
    "tees": [(0.3, 0.15), (0.7, 0.15), (0.95, 0.35), (0.8, 0.45), (0.72, 0.38), (0.72, 0.9), (0.28, 0.9),
             (0.28, 0.38), (0.2, 0.45), (0.05, 0.35)],
    "dresses": [(0.38, 0.08), (0.62, 0.08), (0.66, 0.35), (0.9, 0.92), (0.1, 0.92), (0.34, 0.35)],
    "trousers": [(0.25, 0.08), (0.75, 0.08), (0.85, 0.92), (0.58, 0.92), (0.5, 0.4), (0.42, 0.92), (0.15, 0.92)],
}


def make_product(category: str, seed: int, size: int = 128) -> Image.Image:
    """A garment-shaped product photo: the category's silhouette, filled with the item's own print (colours,
    pattern, scale, angle), so different items of a category look different, as distinct products do."""
    rng = random.Random(f"product-{category}-{seed}")
    base = tuple(rng.randint(0, 255) for _ in range(3))
    ink = tuple(rng.randint(0, 255) for _ in range(3))
    pattern = Image.new("RGB", (size * 2, size * 2), base)
    draw = ImageDraw.Draw(pattern)
    kind, step = rng.choice(("dots", "stripes", "checks", "zigzag", "blobs")), rng.randint(14, 40)
    for y in range(0, size * 2, step):
        for x in range(0, size * 2, step):
            if kind == "dots":
                r = step // 3
                draw.ellipse((x, y, x + r, y + r), fill=ink)
            elif kind == "checks" and (x // step + y // step) % 2 == 0:
                draw.rectangle((x, y, x + step - 1, y + step - 1), fill=ink)
            elif kind == "zigzag":
                draw.line((x, y, x + step // 2, y + step // 2, x + step, y), fill=ink, width=max(2, step // 5))
        if kind == "stripes":
            draw.rectangle((0, y, size * 2, y + step // 2), fill=ink)
    if kind == "blobs":
        for _ in range(rng.randint(4, 10)):
            cx, cy, r = rng.randint(0, size * 2), rng.randint(0, size * 2), rng.randint(size // 8, size // 3)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(rng.randint(0, 255) for _ in range(3)))
    pattern = pattern.rotate(rng.uniform(0, 180), resample=Image.Resampling.BILINEAR).crop(
        (size // 2, size // 2, size * 3 // 2, size * 3 // 2)).filter(ImageFilter.GaussianBlur(1.5))
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon([(x * size, y * size) for x, y in _SILHOUETTES[category]], fill=255)
    image = Image.new("RGB", (size, size), (245, 245, 245))
    image.paste(pattern, (0, 0), mask)
    return image


def make_thumbnail_garment(category: str, seed: int, size: int = 28) -> Image.Image:
    """A Fashion-MNIST-like garment: the category's silhouette, a little scaled and moved, in grey shading of its
    own (smooth noise) on black, so different items of a category share their shape and differ in detail."""
    rng = np.random.default_rng(zlib.crc32(f"thumbnail-{category}-{seed}".encode()))
    scale, dx, dy = rng.uniform(0.85, 1.0), rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5)
    points = [((x - 0.5) * scale * size + size / 2 + dx, (y - 0.5) * scale * size + size / 2 + dy)
              for x, y in _SILHOUETTES[category]]
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon(points, fill=255)
    noise = Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5))
    shading = np.asarray(noise, np.float32)
    shading = (shading - shading.mean()) / (shading.std() + 1e-6)
    grey = np.clip(rng.uniform(120, 200) + 25 * shading, 0, 255).astype(np.uint8)
    return Image.composite(Image.fromarray(grey), Image.new("L", (size, size), 0), mask)


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_catalog(root: Path, per_category: int = 6, fmt: str = "PNG", start: int = 0) -> list[Path]:
    """``root/<category>/<category>-<i>.<ext>`` for every category; returns the paths written."""
    paths = []
    ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
    for category in CATEGORIES:
        (root / category).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_category):
            path = root / category / f"{category}-{i:03d}.{ext}"
            make_image(category, i).save(path, format=fmt)
            paths.append(path)
    return paths


_TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` in idx format (big-endian)."""
    code = _TYPE_CODES[array.dtype]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = True) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_dataset(folder: Path, n_train: int = 12, n_test: int = 6, *, gz: bool = True, seed: int = 0) -> dict:
    """Write the four idx files of a tiny Fashion-MNIST look-alike; return the arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for f in fm.FILES:
            if f.split != split:
                continue
            name = f.name if gz else f.plain_name
            write_idx(folder / name, images if f.kind == "images" else labels, gz=gz)
        arrays[split] = (images, labels)
    return arrays


def write_tiny_backbone(folder: Path, input_size: int = 32, features: int = 16) -> str:
    """A tiny random convolutional ONNX backbone (``onnx:PATH`` with its sidecar), for tests that need thousands
    of images through the real pipeline fast; returns the backbone name for Settings."""
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.normal(0, 0.5, (features, 3, 4, 4)).astype(np.float32), "weights")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "weights"], ["conv"], strides=[4, 4]),
         helper.make_node("Relu", ["conv"], ["relu"]),
         helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["features"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, input_size, input_size])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", features])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.onnx"
    onnx.save(model, path)
    (folder / "tiny.onnx.json").write_text(json.dumps({"input_size": input_size, "mean": [0.5] * 3, "std": [0.5] * 3}))
    return f"onnx:{path}"

def write_product_catalog(root: Path, per_category: int = 8, size: int = 320) -> list[set[str]]:
    """``root/<category>/<category>-<i>.png`` products plus planted copies of five of them: an exact copy, a
    resized one, JPEG re-compressions (quality 35 and 45, one also cropped) and a slightly cropped one. Returns
    the file names of each planted group (original + copy)."""
    for category in PRODUCT_CATEGORIES:
        (root / category).mkdir(parents=True, exist_ok=True)
        for i in range(per_category):
            make_product(category, i, size).save(root / category / f"{category}-{i}.png")
    crop = round(size * 0.04)
    copies = [
        ("tees", 3, "copy-exact.png", lambda im: im, {}),
        ("dresses", 2, "copy-resized.png", lambda im: im.resize((size * 5 // 4, size * 5 // 4)), {}),
        ("trousers", 5, "copy-q35.jpg", lambda im: im, {"quality": 35}),
        ("tees", 6, "copy-cropped.png", lambda im: im.crop((crop, crop, size - crop, size - crop)), {}),
        ("dresses", 7, "copy-cropped-q45.jpg", lambda im: im.crop((crop, crop, size - crop, size - crop)),
         {"quality": 45}),
    ]
    groups = []
    for category, seed, name, change, options in copies:
        change(make_product(category, seed, size)).save(root / category / name, **options)
        groups.append({f"{category}-{seed}.png", name})
    return groups


COLOURS = {"red": (200, 30, 30), "blue": (30, 60, 200), "green": (30, 150, 50), "yellow": (230, 200, 20)}


def make_coloured_product(category: str, seed: int, colour: str, size: int = 160) -> Image.Image:
    """One product in one of ``COLOURS``: its print in shades of that colour, on the usual light background."""
    product = make_product(category, seed, size)
    shades = ImageOps.colorize(product.convert("L"), black=(20, 20, 20), white="white", mid=COLOURS[colour])
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon([(x * size, y * size) for x, y in _SILHOUETTES[category]], fill=255)
    product.paste(shades, (0, 0), mask)
    return product


def write_colour_catalog(root: Path, per_category: int = 3, size: int = 160) -> list[Path]:
    """``root/<category>/<category>-<i>-<colour>.png``: every product in every one of ``COLOURS``."""
    paths = []
    for category in PRODUCT_CATEGORIES:
        (root / category).mkdir(parents=True, exist_ok=True)
        for i in range(per_category):
            for colour in COLOURS:
                path = root / category / f"{category}-{i}-{colour}.png"
                make_coloured_product(category, i, colour, size).save(path)
                paths.append(path)
    return paths

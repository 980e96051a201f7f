"""Backbone inference with ONNX Runtime: image -> input tensor -> pooled features."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.backbone.registry import (
    MIN_SUBJECT,
    SUBJECT_CONTRAST,
    SUBJECT_LINE,
    SUBJECT_MARGIN,
    BackboneSpec,
    Preprocessing,
    get_spec,
    weights_identity,
)
from lookalike.errors import BackboneError
from lookalike.hashing import file_sha256
from lookalike.inference import cpu_session

log = logging.getLogger(__name__)


class FeatureExtractor:
    """Runs an exported backbone. ``prepare`` turns an RGB image into its input; ``__call__`` a batch into features.

    ``fingerprint`` names the exact model: its name, and a checksum of its file and of how pictures are prepared
    for it (``Preprocessing.identity``); cached features, heads and indexes record it.
    """

    def __init__(self, onnx_path: Path, name: str, preprocessing: Preprocessing, threads: int = 0,
                 sha256: str | None = None) -> None:
        try:
            self._session = cpu_session(str(onnx_path), threads)
        except Exception as exc:  # noqa: BLE001 - ORT raises several unrelated types
            raise BackboneError(f"cannot load ONNX model {onnx_path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self.onnx_path = onnx_path
        self.name = name
        self.threads = threads
        self.preprocessing = preprocessing
        self._sha256 = sha256 or file_sha256(onnx_path)
        identity = hashlib.sha256(f"{self._sha256}|{preprocessing.identity}".encode()).hexdigest()
        self.fingerprint = f"{name}@{identity[:12]}"
        size = preprocessing.input_size
        self.num_features = int(self(np.zeros((1, 3, size, size), np.float32)).shape[1])
        self._mean = np.asarray(preprocessing.mean, np.float32).reshape(3, 1, 1) * 255.0
        self._scale = 1.0 / (np.asarray(preprocessing.std, np.float32).reshape(3, 1, 1) * 255.0)

    def with_threads(self, threads: int) -> FeatureExtractor:
        """The same model in a session of its own with ``threads`` intra-op threads."""
        return FeatureExtractor(self.onnx_path, self.name, self.preprocessing, threads, self._sha256)

    def prepare(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """Crop an RGB image (or its (H, W, 3) uint8 pixels) to its subject, pad it to a square, resize it to the
        input size, normalize: (3, S, S) float32; the same tensor for the image and its pixels.

        The crop (``subject_box``) gives the garment the frame however much background a photo has around it, so a
        shopper's photo of a garment and its catalog shot meet at one scale. The padding takes the picture's own
        border colour (the median of its edge pixels) unless the preprocessing names one: a band of another colour
        beside the garment is something the model sees. Both measured in BENCHMARKS.md."""
        size = self.preprocessing.input_size
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected RGB pixels (H, W, 3) uint8, got {image.shape} {image.dtype}")
            pixels, picture = image, None
        else:
            pixels, picture = np.asarray(image), image
        background = border_colour(pixels)
        if self.preprocessing.crop_to_subject:
            rows, columns = subject_box(pixels, background)
            if (rows.stop - rows.start, columns.stop - columns.start) != pixels.shape[:2]:
                pixels, picture = pixels[rows, columns], None
        image = Image.fromarray(np.ascontiguousarray(pixels)) if picture is None else picture
        width, height = image.size
        if width != height:
            side = max(width, height)
            canvas = Image.new("RGB", (side, side), self.preprocessing.pad_color or background)
            canvas.paste(image, ((side - width) // 2, (side - height) // 2))
            image = canvas
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        hwc = np.asarray(image)
        chw = np.empty((3, size, size), np.float32)
        for channel in range(3):  # a plane at a time: 8x faster than one strided transpose (0.04 vs 0.29 ms)
            np.subtract(hwc[:, :, channel], self._mean[channel], out=chw[channel], dtype=np.float32)
        chw *= self._scale
        return chw

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Features of a prepared batch (N, 3, S, S) -> (N, D) float32."""
        if len(batch) == 0:
            return np.zeros((0, getattr(self, "num_features", 0)), np.float32)
        out = self._session.run(None, {self._input: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(batch), -1)


def border_colour(pixels: np.ndarray) -> tuple[int, int, int]:
    """The median colour of an (H, W, 3) picture's edge pixels: its background, for most product photos."""
    edges = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    red, green, blue = (int(v) for v in np.median(edges, axis=0).round())
    return red, green, blue


def subject_box(pixels: np.ndarray, background: tuple[int, int, int]) -> tuple[slice, slice]:
    """The rows and columns of an (H, W, 3) picture that hold its subject: from the first to the last line (row or
    column) in which at least ``SUBJECT_LINE`` of the pixels differ from ``background`` by more than
    ``SUBJECT_CONTRAST`` in some channel, widened by ``SUBJECT_MARGIN``. The whole picture where the subject is under
    ``MIN_SUBJECT`` of it: a picture of one colour, or a subject too close to its background's colour to tell; and
    where the box leaves out the picture's centre: a close-up whose garment covers most of the edges, so that the
    "background" is the garment and the "subject" a patch of wall. A busy background differs from its median colour
    everywhere, so such a photo keeps its frame too.

    Exact to the pixel (a box found on a coarser grid moved by a grid step between a photo and its JPEG copy, and
    their embeddings apart); each channel's test is a lookup table of its 256 values."""
    values = np.arange(256)
    subject = np.take(np.abs(values - background[0]) > SUBJECT_CONTRAST, pixels[..., 0])
    for channel in (1, 2):
        subject |= np.take(np.abs(values - background[channel]) > SUBJECT_CONTRAST, pixels[..., channel])
    height, width = subject.shape
    whole = slice(0, height), slice(0, width)
    per_row = np.count_nonzero(subject, axis=1)
    if per_row.sum() < MIN_SUBJECT * height * width:
        return whole
    rows = np.flatnonzero(per_row >= SUBJECT_LINE * width)
    columns = np.flatnonzero(np.count_nonzero(subject, axis=0) >= SUBJECT_LINE * height)
    if len(rows) == 0 or len(columns) == 0:
        return whole
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1
    if not (top <= height // 2 < bottom and left <= width // 2 < right):
        return whole
    margin = round(SUBJECT_MARGIN * max(bottom - top, right - left))
    return (slice(max(0, top - margin), min(height, bottom + margin)),
            slice(max(0, left - margin), min(width, right + margin)))


def load_backbone(name: str, models_dir: Path, weights: str | None = None, threads: int = 0) -> FeatureExtractor:
    """Load a backbone by registry name or ``onnx:PATH``, exporting it to ``models_dir`` the first time."""
    spec = get_spec(name)
    if spec.onnx_path is not None:
        return FeatureExtractor(spec.onnx_path, spec.name, spec.preprocessing, threads)
    path = _exported_path(spec, models_dir, weights)
    sha256 = _current_export_sha256(path, weights)
    if sha256 is None:
        from lookalike.backbone.export import export_onnx

        log.info("exporting %s to ONNX (once)", spec.name)
        export_onnx(spec, path, weights)
    return FeatureExtractor(path, spec.name, spec.preprocessing, threads, sha256)


def _exported_path(spec: BackboneSpec, models_dir: Path, weights: str | None) -> Path:
    tag = "" if weights is None else "-" + "".join(c if c.isalnum() else "_" for c in Path(weights).name)
    return models_dir / f"{spec.name}{tag}" / "backbone.onnx"


def _current_export_sha256(path: Path, weights: str | None) -> str | None:
    """The exported file's checksum when it is intact and made from these weights, else None (export again)."""
    sidecar = path.with_name(path.name + ".json")
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
    except ValueError:
        return None
    sha256 = file_sha256(path)
    return sha256 if meta.get("weights") == weights_identity(weights) and meta.get("sha256") == sha256 else None

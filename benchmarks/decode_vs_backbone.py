"""Where ingest time goes per core: JPEG decode + resize + normalize against the backbone, one thread each.

    python benchmarks/decode_vs_backbone.py --models-dir $LOOKALIKE_HOME/models

Generates 64 catalog-sized (600x800) JPEGs, times ``Featurizer.prepare`` on them (decode with JPEG draft
scaling, pad, resize, normalize) on one core, then the backbone (ONNX Runtime, one thread) on batches of
32; prints images per second for each, medians of three runs, as JSON. On a GPU the backbone's share
shrinks and the decode share is what needs cores.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.backbone.runtime import load_backbone
from lookalike.embedding.featurizer import Featurizer


def jpegs(n: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        pixels = rng.random((800, 600, 3)) * 40 + np.linspace(0, 200, 600)[None, :, None]
        buffer = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--backbone", default="efficientnet-lite0-multiscale")
    args = parser.parse_args()
    extractor = load_backbone(args.backbone, args.models_dir, threads=1)
    featurizer = Featurizer(cache=None, extractor=extractor, batch_size=32, workers=1, max_pixels=40_000_000)
    images = jpegs(64)
    decode, backbone = [], []
    for _ in range(3):
        started = time.perf_counter()
        tensors = np.stack([featurizer.prepare(data) for data in images])
        decode.append(len(images) / (time.perf_counter() - started))
        started = time.perf_counter()
        for start in range(0, len(tensors), 32):
            extractor(tensors[start : start + 32])
        backbone.append(len(tensors) / (time.perf_counter() - started))
    print(json.dumps({"backbone": extractor.fingerprint, "input_px": extractor.preprocessing.input_size,
                      "decode_prepare_images_per_s_per_core": round(statistics.median(decode)),
                      "backbone_images_per_s_per_thread": round(statistics.median(backbone))}))


if __name__ == "__main__":
    main()

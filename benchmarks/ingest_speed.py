"""Ingest throughput on realistic JPEGs, side by side with the bare backbone and a PyTorch-eager pipeline.

    python benchmarks/ingest_speed.py --images 2000 --rounds 3

Three ways to turn the same 600x800 catalog JPEGs into backbone features, interleaved in each round:
- ``ingest``: `lookalike ingest`'s pipeline in-process (fresh home and feature cache each round: read, hash,
  decode in worker threads overlapping ONNX inference, catalog DB, index, save);
- ``backbone``: the bare ONNX backbone on already-decoded, already-resized input tensors (its own limit), the
  faster of two ways of using every core: one run at a time on all of them, or one one-thread run per core at
  once (as ingest does);
- ``eager``: what typical projects do: PIL decode, torchvision-style transforms, the same network in PyTorch eager
  mode under ``torch.no_grad()``, one image at a time, features appended to a Python list.

Each round also profiles ingest's steps (CPU per image, one thread each): their sum bounds ingest on these cores
(``ceiling_vs_backbone``), and ``ingest_vs_ceiling`` says how close ingest comes to that bound, in the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import median, write_catalog_jpegs

from lookalike.backbone.registry import get_spec
from lookalike.backbone.runtime import FeatureExtractor
from lookalike.bootstrap import load_extractor, open_engine
from lookalike.concurrency import bounded_map
from lookalike.config import Settings
from lookalike.data.sources import open_source
from lookalike.hashing import content_key
from lookalike.ingest import ingest
from lookalike.io.images import decode_image, decode_pixels, read_image_file


def ingest_rate(settings: Settings, catalog: Path) -> tuple[float, float]:
    """Images/s of ingesting ``catalog`` into a fresh home (model loading excluded), and the CPU ms per image of the
    thread that called ingest (catalog, index and cache writes; the decoding and the backbone run in others)."""
    shutil.rmtree(settings.home, ignore_errors=True)
    engine = open_engine(settings)
    started, own_cpu = time.perf_counter(), time.thread_time()
    report = ingest(engine, open_source(catalog))
    engine.close()
    elapsed, own_cpu = time.perf_counter() - started, time.thread_time() - own_cpu
    if report.failures or report.added != report.seen:
        raise RuntimeError(f"ingest did not add every image: {report}")
    return report.added / elapsed, own_cpu * 1000 / report.added


def backbone_rate(settings: Settings, tensors: np.ndarray, streams: int) -> float:
    """Images/s of the ONNX backbone alone over prepared inputs, in the ingest's batch size: ``streams`` runs at
    once on one thread each, or (``streams`` 1) one run at a time on every core."""
    extractor = load_extractor(settings)
    if streams > 1:
        extractor = extractor.with_threads(1)
    batches = [tensors[start : start + settings.batch_size] for start in range(0, len(tensors), settings.batch_size)]
    extractor(batches[0])  # warm-up
    started = time.perf_counter()
    for _ in bounded_map(extractor, batches, streams, in_flight=streams):
        pass
    return len(tensors) / (time.perf_counter() - started)


def eager_rate(settings: Settings, paths: list[Path]) -> float:
    """Images/s of a straightforward PyTorch-eager pipeline with the same network and input size."""
    import torch
    from PIL import Image

    spec = get_spec(settings.backbone)
    assert spec.build is not None
    model = spec.build(settings.backbone_weights).eval()
    size = spec.preprocessing.input_size
    mean = torch.tensor(spec.preprocessing.mean).view(3, 1, 1)
    std = torch.tensor(spec.preprocessing.std).view(3, 1, 1)

    def transform(image: Image.Image) -> torch.Tensor:  # Resize(size), CenterCrop(size), ToTensor, Normalize
        width, height = image.size
        scale = size / min(width, height)
        image = image.resize((max(size, round(width * scale)), max(size, round(height * scale))),
                             Image.Resampling.BILINEAR)
        left, top = (image.width - size) // 2, (image.height - size) // 2
        image = image.crop((left, top, left + size, top + size))
        tensor = torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)
        return (tensor - mean) / std

    features = []
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))  # warm-up
        started = time.perf_counter()
        for path in paths:
            image = Image.open(path).convert("RGB")
            features.append(model(transform(image).unsqueeze(0)).numpy()[0])
    return len(paths) / (time.perf_counter() - started)


def stage_profile(extractor: FeatureExtractor, paths: list[Path], batch_size: int, max_pixels: int
                  ) -> dict[str, float]:
    """CPU ms per image of each step of ingesting ``paths``, on one thread (medians of 3 passes); the backbone
    runs on one ONNX Runtime thread, as in ingest. Every step shares the same cores, so ingest reaches at most
    ``backbone / sum(steps)`` of the bare backbone: its ceiling."""
    size = extractor.preprocessing.input_size
    single = extractor.with_threads(1)
    data = [read_image_file(p) for p in paths]
    decoded = [decode_pixels(d, max_pixels=max_pixels, draft_size=size) for d in data]
    tensors = np.stack([extractor.prepare(pixels) for pixels in decoded])
    steps: dict[str, Callable[[], object]] = {
        "read": lambda: [read_image_file(p) for p in paths],
        "hash": lambda: [content_key(d) for d in data],
        "decode (JPEG DCT scaling)": lambda: [decode_pixels(d, max_pixels=max_pixels, draft_size=size) for d in data],
        "pad, resize, normalize": lambda: [extractor.prepare(pixels) for pixels in decoded],
        "backbone": lambda: [single(tensors[i : i + batch_size]) for i in range(0, len(tensors), batch_size)],
    }
    # not a step of ingest: Pillow's decoder, which ingest used before issue #21, for comparison (outside the ceiling)
    reference = {"pillow_decode": lambda: [np.asarray(decode_image(d, max_pixels=max_pixels, draft_size=size))
                                           for d in data]}
    profile = {}
    for name, step in {**steps, **reference}.items():
        times = []
        for _ in range(3):
            started = time.process_time()
            step()
            times.append((time.process_time() - started) * 1000 / len(paths))
        profile[name] = round(median(times), 3)
    return profile


def run(work: Path, images: int, rounds: int, eager_images: int, models_dir: Path | None = None) -> dict[str, Any]:
    catalog = write_catalog_jpegs(work / f"catalog-jpeg-{images}", images)
    paths = sorted(catalog.rglob("*.jpg"))
    settings = Settings(home=work / "ingest-home", models_dir=models_dir or work / "models",
                        _env_file=None)  # type: ignore[call-arg]
    extractor = load_extractor(settings)  # exports the backbone once, outside the timings
    from lookalike.embedding.featurizer import Featurizer

    featurizer = Featurizer(extractor, max_pixels=settings.max_image_pixels)
    tensors = np.stack([featurizer.prepare(p) for p in paths])
    cores = os.cpu_count() or 1
    rates: dict[str, list[float]] = {"ingest": [], "backbone": [], "backbone_one_run": [],
                                     "backbone_runs_per_core": [], "eager": []}
    profiles: list[dict[str, float]] = []
    own_cpu: list[float] = []
    for _ in range(rounds):  # the profile too, in every round: this host's speed drifts between rounds
        one_run, per_core = backbone_rate(settings, tensors, 1), backbone_rate(settings, tensors, cores)
        rates["backbone_one_run"].append(one_run)
        rates["backbone_runs_per_core"].append(per_core)
        rates["backbone"].append(max(one_run, per_core))
        rate, cpu = ingest_rate(settings, catalog)
        rates["ingest"].append(rate)
        own_cpu.append(cpu)
        rates["eager"].append(eager_rate(settings, paths[:eager_images]))
        profiles.append(stage_profile(extractor, paths[:300], settings.batch_size, settings.max_image_pixels))
    pillow_decode = [profile.pop("pillow_decode") for profile in profiles]
    ceilings = [profile["backbone"] / sum(profile.values()) for profile in profiles]
    ratio_backbone = [i / b for i, b in zip(rates["ingest"], rates["backbone"], strict=True)]
    ratio_eager = [i / e for i, e in zip(rates["ingest"], rates["eager"], strict=True)]
    return {
        "images": len(paths), "eager_images": min(eager_images, len(paths)), "rounds": rounds,
        "image_size": "600x800 JPEG", "backbone": settings.backbone, "batch_size": settings.batch_size,
        "images_per_s": {name: round(median(values), 1) for name, values in rates.items()},
        "ingest_vs_backbone": round(median(ratio_backbone), 3),
        "ingest_vs_eager": round(median(ratio_eager), 2),
        "cpu_ms_per_image": {step: round(median([p[step] for p in profiles]), 3) for step in profiles[0]},
        "cpu_ms_per_image_pillow_decode": round(median(pillow_decode), 3),
        "cpu_ms_per_image_ingest_thread": round(median(own_cpu), 3),
        "ceiling_vs_backbone": round(median(ceilings), 3),
        "ingest_vs_ceiling": round(median([r / c for r, c in zip(ratio_backbone, ceilings, strict=True)]), 3),
        "all_rounds": {name: [round(v, 1) for v in values] for name, values in rates.items()}
        | {"ceiling_vs_backbone": [round(c, 3) for c in ceilings]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--eager-images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="Folder for the generated catalog and homes.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="lookalike-bench-"))
    print(json.dumps(run(work, args.images, args.rounds, args.eager_images), indent=2))


if __name__ == "__main__":
    main()

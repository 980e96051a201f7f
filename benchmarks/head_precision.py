"""A home's trained head run three ways, side by side on its cached features: float32 weights, 8-bit weights in
blocks (``weight_bits`` 8, what heads made now run with) and ONNX Runtime's dynamic int8 quantization (weights per
channel and the rows per tensor in 8 bits, ``quantize_dynamic``), each embedding gallery and queries alike.

    python benchmarks/head_precision.py --home /tmp/lkdemo [--out benchmarks/results/head_precision.json]

For each: how far its embeddings are from float32's (cosine), the category protocol (clean and photo-like test
queries against the 60,000 training images) and the exact-item protocol (mild and strong re-photographed catalog
items), as `lookalike evaluate` measures them; then, query by query against float32, how many queries only one of
the two gets right (top-1 category; the item within 1, 5, 10), and the two-sided sign-test p-value of that split:
a small p means a real difference, not noise. Also whether a row's embedding depends on the rows batched with it
(dynamic int8 scales the rows per batch), and the head's CPU per call at batch 1, 4 and 32 on one thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import write_results
from scipy.stats import binomtest

from lookalike.bootstrap import build_featurizer, load_extractor, load_head
from lookalike.config import Settings
from lookalike.data.photolike import write_photo_like_set
from lookalike.data.sources import open_source
from lookalike.embedding.head import EmbeddingHead, l2_normalize
from lookalike.embedding.labelled import collect_features
from lookalike.evaluation.metrics import exact_item_ranks, knn
from lookalike.evaluation.run import item_labels, relevance_labels, write_exact_item_sets
from lookalike.inference import cpu_session

Embed = Callable[[np.ndarray], np.ndarray]


def dynamic_int8(head: EmbeddingHead) -> Embed:
    """The head's float32 graph through ``onnxruntime.quantization.quantize_dynamic`` (per-channel int8 weights)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "head.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(dataclasses.replace(head, weight_bits=32).onnx_model())
        quantize_dynamic(source, target, per_channel=True, weight_type=QuantType.QInt8)
        session = cpu_session(str(target), 1)
    return lambda x: l2_normalize(session.run(None, {"x": l2_normalize(x)})[0])


def cpu_per_call(embed: Embed, dim: int) -> dict[str, float]:
    rows = l2_normalize(np.random.default_rng(0).random((32, dim), dtype=np.float32))
    timings = {}
    for batch in (1, 4, 32):
        times = []
        for _ in range(50):
            started = time.thread_time()
            embed(rows[:batch])
            times.append(time.thread_time() - started)
        timings[f"batch {batch} ms"] = round(float(np.median(times)) * 1000, 3)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--exact", type=int, default=1000)
    parser.add_argument("--photo-like", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "head_precision.json")
    args = parser.parse_args()
    settings = Settings(home=args.home)
    manifest = settings.datasets_dir / "fashion-mnist" / "manifest.csv"
    gallery, test = open_source(manifest, split="train"), open_source(manifest, split="test")
    extractor = load_extractor(settings)
    featurizer = build_featurizer(settings, extractor)
    trained = load_head(settings.heads_dir, extractor)
    images, queries = collect_features(featurizer, gallery), collect_features(featurizer, test)
    photo = collect_features(featurizer, open_source(write_photo_like_set(
        test, settings.datasets_dir / f"photo-like-fashion-mnist-test-{args.photo_like}", args.photo_like)))
    exact = {style: collect_features(featurizer, open_source(path)) for style, path in write_exact_item_sets(
        gallery, settings.datasets_dir / f"exact-fashion-mnist-train-{args.exact}", args.exact).items()}
    heads: dict[str, Embed] = {"float32": dataclasses.replace(trained, weight_bits=32, threads=1),
                               "8-bit weights in blocks (shipped)": dataclasses.replace(trained, weight_bits=8,
                                                                                        threads=1),
                               "dynamic int8 (quantize_dynamic)": dynamic_int8(trained)}
    q_labels, g_labels = relevance_labels(queries.entries, images.entries)
    p_labels, _ = relevance_labels(photo.entries, images.entries)
    outcomes: dict[str, dict[str, np.ndarray]] = {}
    results: dict[str, Any] = {}
    reference = None
    for name, embed in heads.items():
        g = embed(images.features)
        reference = g if reference is None else reference
        cosine = (g * reference).sum(axis=1)
        row: dict[str, Any] = {"cosine to float32 (min, mean)": [round(float(cosine.min()), 6),
                                                                 round(float(cosine.mean()), 6)]}
        hits: dict[str, np.ndarray] = {}
        for protocol, features, labels in (("clean", queries.features, q_labels), ("photo-like", photo.features,
                                                                                     p_labels)):
            _, top = knn(embed(features), g, 1)
            hits[f"{protocol} top-1 category"] = g_labels[top[:, 0]] == labels
            row[f"{protocol} precision@1"] = round(float(hits[f"{protocol} top-1 category"].mean()), 4)
        for style, views in exact.items():
            items, g_items = item_labels(views.entries, images.entries)
            rank, _ = exact_item_ranks(embed(views.features), items, g, g_items)
            for k in (1, 5, 10):
                hits[f"{style} item within {k}"] = rank <= k
                row[f"{style} recall@{k}"] = round(float((rank <= k).mean()), 4)
        alone = np.concatenate([embed(images.features[i : i + 1]) for i in range(200)])
        row["largest change of a row embedded alone instead of in a batch"] = float(
            np.abs(alone - embed(images.features[:200])).max())
        row |= cpu_per_call(embed, trained.in_dim)
        outcomes[name] = hits
        results[name] = row
        print(name, json.dumps(row), flush=True)
    paired: dict[str, Any] = {}
    for name in list(heads)[1:]:
        paired[name] = {}
        for measure, exact_hits in outcomes["float32"].items():
            only_float = int((exact_hits & ~outcomes[name][measure]).sum())
            only_this = int((outcomes[name][measure] & ~exact_hits).sum())
            p = binomtest(only_float, only_float + only_this).pvalue if only_float + only_this else 1.0
            paired[name][measure] = {"float32 only": only_float, "this only": only_this, "p": round(float(p), 4)}
        print(name, "against float32:", json.dumps(paired[name]), flush=True)
    write_results(args.out, head=trained.version, heads=results, paired_with_float32=paired)


if __name__ == "__main__":
    main()

"""Head training recipes side by side on a demo home's cached features: exact-item recall (mild and strong
re-photographed catalog items) beside the category protocol, for each recipe and the frozen backbone.

    python benchmarks/exact_item.py --home /tmp/lkdemo                       # the shipped recipe
    python benchmarks/exact_item.py --home /tmp/lkdemo --recipe category-only --recipe shipped \\
        --set instance_weight=1 --set category_weight=0.3

Each ``--recipe`` is a named TrainConfig change (``RECIPES``); ``--set field=value`` adds a recipe of its own
(with ``--set`` and no ``--recipe``, only the ``--set`` recipes run).
Features come from the home's feature cache (the demo computes them); missing ones are computed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from lookalike.bootstrap import build_featurizer, load_extractor
from lookalike.config import Settings
from lookalike.data.photolike import write_photo_like_set
from lookalike.data.sources import open_source
from lookalike.embedding.head import l2_normalize
from lookalike.embedding.labelled import collect_features, collect_photo_like_features
from lookalike.evaluation.metrics import exact_item_metrics, retrieval_metrics
from lookalike.evaluation.run import item_labels, relevance_labels, write_exact_item_sets
from lookalike.training.triplet import TrainConfig, train_head

RECIPES = {
    "shipped": {},
    "category-only": {"instance_weight": 0.0},
}
VIEWS = 24_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--recipe", action="append", default=[], choices=sorted(RECIPES))
    parser.add_argument("--set", action="append", default=[], help="field=value[,field=value]: a recipe of its own")
    parser.add_argument("--views", type=int, default=VIEWS)
    parser.add_argument("--exact", type=int, default=1000)
    parser.add_argument("--photo-like", type=int, default=1000)
    parser.add_argument("--frozen-category", action="store_true", help="Also the frozen backbone's category figures.")
    parser.add_argument("--out", type=Path, help="Also write the figures as JSON here.")
    args = parser.parse_args()
    settings = Settings(home=args.home)
    manifest = settings.datasets_dir / "fashion-mnist" / "manifest.csv"
    gallery, test = open_source(manifest, split="train"), open_source(manifest, split="test")
    featurizer = build_featurizer(settings, load_extractor(settings, fine_tuned=False))
    started = time.perf_counter()
    images = collect_features(featurizer, gallery)
    data = images.with_views(collect_photo_like_features(featurizer, images.entries, args.views, 0))
    queries = collect_features(featurizer, test)
    photo = collect_features(featurizer, open_source(write_photo_like_set(
        test, settings.datasets_dir / f"photo-like-fashion-mnist-test-{args.photo_like}", args.photo_like)))
    exact = {style: collect_features(featurizer, open_source(path)) for style, path in write_exact_item_sets(
        gallery, settings.datasets_dir / f"exact-fashion-mnist-train-{args.exact}", args.exact).items()}
    print(f"features ready in {time.perf_counter() - started:.0f}s: {len(data.entries)} training rows")

    recipes = {name: RECIPES[name] for name in args.recipe or ([] if args.set else ["shipped"])}
    for spec in args.set:
        changes = dict(item.split("=", 1) for item in spec.split(","))
        recipes[spec] = {k: type(getattr(TrainConfig(), k))(v) if getattr(TrainConfig(), k) is not None else float(v)
                         for k, v in changes.items()}
    q_labels, g_labels = relevance_labels(queries.entries, images.entries)
    p_labels, _ = relevance_labels(photo.entries, images.entries)
    results = {}

    def measure(name: str, embed, seconds: float | None, category: bool = True) -> None:  # noqa: ANN001
        g = l2_normalize(embed(images.features))
        row: dict = {"train s": seconds}
        if category:  # (the frozen backbone's category figures are in BENCHMARKS.md: 4,864-d MAP@R takes long)
            clean = retrieval_metrics(l2_normalize(embed(queries.features)), q_labels, g, g_labels).overall
            photo_like = retrieval_metrics(l2_normalize(embed(photo.features)), p_labels, g, g_labels).overall
            row |= {"clean precision@1": clean["precision@1"], "clean recall@5": clean["recall@5"],
                    "photo-like precision@1": photo_like["precision@1"]}
        for style, views in exact.items():
            q_items, g_items = item_labels(views.entries, images.entries)
            figures = exact_item_metrics(l2_normalize(embed(views.features)), q_items, g, g_items)
            row |= {f"{style} {k}": v for k, v in figures.items() if k != "queries"}
        results[name] = row
        print(name, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)

    measure("frozen backbone", lambda x: x, None, category=args.frozen_category)
    for name, changes in recipes.items():
        config = dataclasses.replace(TrainConfig(), **changes)
        instances = data.instance_labels() if config.instance_weight else None
        result = train_head(data.features, data.category_labels(), "benchmark", config, instances=instances,
                            on_epoch=lambda s: print(f"  epoch {s.epoch}: {s}", flush=True))
        measure(name, result.head, round(result.seconds, 1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()

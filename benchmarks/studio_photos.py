"""Shopper-style studio photos against an ingested demo home: does the search find the very item, and its category?

    python benchmarks/studio_photos.py --home /tmp/lkdemo [--queries 300] [--out results/studio_photos.json]

Each query is a JPEG made by ``common.catalog_jpeg``: a Fashion-MNIST garment coloured, enlarged to 75-95% of the
frame's width, on a light, lightly noisy studio background, taken 3:4 (480x640) and square (480x480). Unlike the
demo's own protocols (the evaluation report), whose queries are square and where the garment fills most of the
frame, this is what a shopper's photo of a product looks like. Two measures, through ``SearchService.search_images``
(decode, prepare, model, index, colour ranking: the search the API runs):
- top-1 category: ``--queries`` test garments (not in the catalog); the first result's category is the query's;
- exact item: ``--queries`` training garments (in the catalog), rendered anew; recall@1 and @10 of that very item.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from common import catalog_jpeg, write_results
from PIL import Image

from lookalike.bootstrap import open_engine
from lookalike.config import Settings
from lookalike.data.sources import CatalogEntry, open_source
from lookalike.search import SearchService

FRAMES = {"3:4": (480, 640), "square": (480, 480)}


def studio_figures(service: SearchService, tests: list[CatalogEntry], known: list[CatalogEntry],
                   ids: dict[str, int], frame: tuple[int, int]) -> dict[str, float]:
    """Top-1 category over ``tests``, and recall@1 / @10 of the very item over ``known`` (catalog ids by path)."""
    rng = random.Random(1)
    right = 0
    for entry in tests:
        query = catalog_jpeg(Image.open(entry.path).convert("L"), rng, frame)
        right += service.search_images([query], k=1)[0].hits[0].category == entry.category
    rng = random.Random(2)
    first = within_ten = 0
    for entry in known:
        query = catalog_jpeg(Image.open(entry.path).convert("L"), rng, frame)
        found = [hit.id for hit in service.search_images([query], k=10)[0].hits]
        first += found[:1] == [ids[str(entry.path)]]
        within_ten += ids[str(entry.path)] in found
    return {"top-1 category": round(right / len(tests), 4), "exact item recall@1": round(first / len(known), 4),
            "exact item recall@10": round(within_ten / len(known), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="a home the demo has ingested and trained")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings = Settings(home=args.home)
    manifest = settings.datasets_dir / "fashion-mnist" / "manifest.csv"
    rng = random.Random(7)
    tests = rng.sample(open_source(manifest, split="test"), args.queries)
    known = rng.sample(open_source(manifest, split="train"), args.queries)
    engine = open_engine(settings, reconcile=False)
    try:
        ids = {item.path: item.id for item in engine.catalog.get_items_by_paths([str(e.path) for e in known])}
        if len(ids) != len(known):
            raise SystemExit(f"{args.home} lacks some training images: run the demo on it first")
        service = SearchService(engine)
        figures = {name: studio_figures(service, tests, known, ids, frame) for name, frame in FRAMES.items()}
        model = engine.model_version
    finally:
        engine.close()
    print(model)
    for name, row in figures.items():
        print(f"{name:7s} {json.dumps(row)}")
    if args.out:
        write_results(args.out, model=model, queries=args.queries, figures=figures)


if __name__ == "__main__":
    main()

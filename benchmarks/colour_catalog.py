"""A colour catalog: do same-colour look-alikes rank first, and are colour variants kept apart as duplicates?

Builds a folder catalog of Fashion-MNIST test garments, each in four colours (the grey garment coloured on a white
background), ingests it into a fresh home through the CLI, and searches a shopper's photo (rotated, JPEG q75) of
each garment in one of its colours, with colour in the ranking and without (the same vectors, side by side). A
query passes when, among its top-10 results of its own category, every one in the query's colour ranks above
every other. Then `lookalike duplicates --format json` is counted for groups that join two colours.

    python benchmarks/colour_catalog.py --fashion-mnist /tmp/lkdemo/datasets/fashion-mnist --work /tmp/colours \\
        [--head /tmp/lkdemo/heads]      # with a trained head; without: the untrained (identity) head
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).parent))
from planted_copies import lookalike  # noqa: E402

from lookalike import search  # noqa: E402
from lookalike.bootstrap import open_engine  # noqa: E402
from lookalike.config import Settings  # noqa: E402
from lookalike.search import SearchService  # noqa: E402

COLOURS = {"red": (200, 30, 30), "blue": (30, 60, 200), "green": (30, 150, 50), "yellow": (230, 200, 20)}


def coloured(grey: Image.Image, colour: str) -> Image.Image:
    return ImageOps.colorize(grey.convert("L"), black="white", white=COLOURS[colour]).resize((56, 56))


def photo(image: Image.Image, seed: int) -> bytes:
    angle = np.random.default_rng(seed).uniform(-6, 6)
    buffer = io.BytesIO()
    image.rotate(angle, fillcolor="white", resample=Image.Resampling.BILINEAR).save(buffer, "JPEG", quality=75)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion-mnist", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--head", type=Path, help="A heads folder to use in the fresh home (default: untrained).")
    parser.add_argument("--garments", type=int, default=150)
    parser.add_argument("--colour-weight", type=float, default=search.COLOUR_WEIGHT,
                        help="How much colour ranks (LOOKALIKE_COLOUR_WEIGHT).")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    manifest = pd.read_csv(args.fashion_mnist / "manifest.csv")
    chosen = manifest[manifest.split == "test"].sample(args.garments, random_state=0)
    catalog, home = args.work / "catalog", args.work / "home"
    queries = []
    for n, row in enumerate(chosen.itertuples()):
        grey = Image.open(args.fashion_mnist / row.path)
        folder = catalog / row.path.split("/")[-2]
        folder.mkdir(parents=True, exist_ok=True)
        for colour in COLOURS:
            coloured(grey, colour).save(folder / f"{n:04d}-{colour}.png")
        colour = list(COLOURS)[n % len(COLOURS)]
        queries.append((photo(coloured(grey, colour), n), folder.name, f"{n:04d}-{colour}.png", colour))
    if args.head:
        shutil.copytree(args.head, home / "heads")
    ingest = lookalike(home, "ingest", str(catalog))
    if ingest.returncode:
        raise SystemExit(ingest.stderr)
    engine = open_engine(Settings(home=home, _env_file=None))  # type: ignore[call-arg]
    service = SearchService(engine, colour_weight=args.colour_weight)
    images = [q[0] for q in queries]
    vectors, palettes = service.query_embeddings(images)
    figures = {}
    for name, with_colour in (("with colour", palettes), ("without colour", None)):
        passed, very_item, same_share = 0, 0, []
        for i, (_, category, name_of_item, colour) in enumerate(queries):
            hits = service.search_vectors(vectors[i : i + 1], 10, palettes=None if with_colour is None
                                          else with_colour[i : i + 1])[0].hits
            very_item += Path(hits[0].path).name == name_of_item
            own = [Path(h.path).name.endswith(f"-{colour}.png") for h in hits if h.category == category]
            passed += bool(own) and own == sorted(own, reverse=True) and own[0]
            same_share.append(np.mean([Path(h.path).name.endswith(f"-{colour}.png") for h in hits]))
        figures[name] = {"same colour first": round(passed / len(queries), 4),
                         "very item at rank 1": round(very_item / len(queries), 4),
                         "same-colour share of top 10": round(float(np.mean(same_share)), 4)}
    engine.catalog.close()
    result = lookalike(home, "duplicates", "--format", "json")
    if result.returncode:
        raise SystemExit(result.stderr)
    groups = json.loads(result.stdout)["groups"]
    mixed = sum(len({Path(i["path"]).stem.split("-")[1] for i in g["items"]}) > 1 for g in groups)
    figures |= {"queries": len(queries), "catalog": len(queries) * len(COLOURS), "duplicate groups": len(groups),
                "groups joining two colours": mixed}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

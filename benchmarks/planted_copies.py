"""Planted copies: does `lookalike duplicates` find copied listings, and only them?

Builds a folder catalog of Fashion-MNIST test images (PNG, one folder per category) with copies of some of them
planted beside their originals (exact, 2x resized, JPEG quality 60, a 1-pixel crop resized back), ingests it
into a fresh home through the CLI, runs `lookalike duplicates --format json` and counts the copies grouped with
their original and the groups that join two different originals.

    python benchmarks/planted_copies.py --fashion-mnist /tmp/lkdemo/datasets/fashion-mnist --work /tmp/planted \\
        [--head /tmp/lkdemo/heads]      # with a trained head; without: the untrained (identity) head
    python benchmarks/planted_copies.py --demo-home /tmp/lkdemo --work /tmp/planted-demo   # into the demo catalog
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from PIL import Image

KINDS = ("exact", "resized-2x", "jpeg-q60", "crop-1px")


def copy_of(image: Image.Image, kind: str) -> tuple[Image.Image, dict]:
    if kind == "resized-2x":
        return image.resize((image.width * 2, image.height * 2), Image.Resampling.BICUBIC), {}
    if kind == "jpeg-q60":
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=60)
        return Image.open(io.BytesIO(buffer.getvalue())), {}
    if kind == "crop-1px":
        return image.crop((1, 1, image.width - 1, image.height - 1)).resize(image.size, Image.Resampling.BICUBIC), {}
    return image.copy(), {}


def plant(manifest: Path, folder: Path, n_items: int, n_copies: int, split: str) -> dict[str, tuple[str, str]]:
    """Write originals (when ``n_items``) and ``n_copies`` copies under ``folder``; returns
    copy -> (original path, kind of copy)."""
    rows = pd.read_csv(manifest)
    rows = rows[rows["split"] == split].sample(n=max(n_items, n_copies), random_state=0)
    planted = {}
    for i, row in enumerate(rows.itertuples()):
        source = manifest.parent / row.path
        category = folder / str(row.category).replace("/", "-")
        category.mkdir(parents=True, exist_ok=True)
        original = category / f"item-{i:04d}.png" if n_items else source
        if n_items:
            shutil.copyfile(source, original)
        if i < n_copies:
            kind = KINDS[i % len(KINDS)]
            image, _ = copy_of(Image.open(source), kind)
            name = category / f"copy-{i:04d}-{kind}.{'jpg' if kind == 'jpeg-q60' else 'png'}"
            image.convert("RGB").save(name, quality=95) if kind == "jpeg-q60" else image.save(name)
            planted[str(name.resolve())] = (str(Path(original).resolve()), kind)
    return planted


def lookalike(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOOKALIKE_HOME": str(home)}
    command = Path(sys.executable).parent / "lookalike"
    return subprocess.run([str(command), *args], env=env, capture_output=True, text=True, check=False)


def score(groups: list[dict], planted: dict[str, tuple[str, str]]) -> dict:
    where = {item["path"]: g for g, group in enumerate(groups) for item in group["items"]}
    found = dict.fromkeys(KINDS, 0)
    for copy, (original, kind) in planted.items():
        if copy in where and where.get(original) == where[copy]:
            found[kind] += 1
    copies = set(planted)
    originals_per_group = [sum(1 for item in group["items"] if item["path"] not in copies) for group in groups]
    return {"copies found": sum(found.values()), "copies planted": len(planted), "found by kind": found,
            "groups": len(groups), "groups joining different originals": sum(n > 1 for n in originals_per_group)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion-mnist", type=Path, help="The imported dataset folder (with manifest.csv).")
    parser.add_argument("--demo-home", type=Path, help="Plant copies into this demo home's catalog instead.")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--head", type=Path, help="A heads folder to use in the fresh home (default: untrained).")
    parser.add_argument("--items", type=int, default=580)
    parser.add_argument("--copies", type=int, default=20)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    if args.demo_home:
        home = args.demo_home
        manifest = home / "datasets" / "fashion-mnist" / "manifest.csv"
        planted = plant(manifest, args.work / "copies", 0, args.copies, "train")
    else:
        home = args.work / "home"
        planted = plant(args.fashion_mnist / "manifest.csv", args.work / "catalog", args.items, args.copies, "test")
        if args.head:
            shutil.copytree(args.head, home / "heads")
    started = time.perf_counter()
    ingest = lookalike(home, "ingest", str(args.work / ("copies" if args.demo_home else "catalog")))
    if ingest.returncode:
        raise SystemExit(ingest.stderr)
    result = lookalike(home, "duplicates", "--format", "json")
    if result.returncode:
        raise SystemExit(result.stderr)
    body = json.loads(result.stdout)
    figures = score(body["groups"], planted) | {"calibration": body["calibration"],
                                                 "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(figures, indent=2))
    if args.demo_home:  # leave the demo catalog as it was
        ids = [item["id"] for group in body["groups"] for item in group["items"] if item["path"] in planted]
        print(f"planted items: {len(ids)} grouped; remove them with the API or a fresh demo")


if __name__ == "__main__":
    main()

"""Copies of tiny images, pixel by pixel: how many copies of each kind the aligned pixels find, and how close
distinct Fashion-MNIST items already are to each other.

    python benchmarks/pixel_copies.py [--fashion-mnist /usr/share/datasets/fashion-mnist] [--items 1000]

For each kind of copy, the share of copies of test images whose aligned pixel similarity to their original
(``lookalike.pixels``) reaches ``duplicates.PIXEL_MATCH``; then, for the test and the training split, how many
distinct items have another item at least as close in raw pixels (28 px correlation) as a copy is to its original.
"""

from __future__ import annotations

import argparse
import gzip
import io
from pathlib import Path

import faiss
import numpy as np
from PIL import Image

from lookalike.duplicates import PIXEL_MATCH
from lookalike.pixels import aligned_similarity, grey_thumbnail


def images(folder: Path, split: str) -> np.ndarray:
    with gzip.open(folder / f"{split}-images-idx3-ubyte.gz") as file:
        raw = file.read()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("L")


COPIES = {
    "2x resized": lambda im: im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC),
    "JPEG q75": lambda im: jpeg(im, 75),
    "JPEG q60": lambda im: jpeg(im, 60),
    "JPEG q40": lambda im: jpeg(im, 40),
    "1-px crop resized back": lambda im: im.crop((1, 1, im.width - 1, im.height - 1)).resize(
        im.size, Image.Resampling.BICUBIC),
    "5% crop": lambda im: im.crop((1, 1, im.width - 1, im.height - 1)),
}


def unit_rows(pixels: np.ndarray) -> np.ndarray:
    rows = pixels.reshape(len(pixels), -1).astype(np.float32)
    rows -= rows.mean(axis=1, keepdims=True)
    return rows / (np.linalg.norm(rows, axis=1, keepdims=True) + 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion-mnist", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--items", type=int, default=1000)
    args = parser.parse_args()
    test = images(args.fashion_mnist, "t10k")[: args.items]
    originals = [Image.fromarray(a) for a in test]
    print(f"aligned pixels >= {PIXEL_MATCH} ({len(originals)} test images):")
    for kind, make in COPIES.items():
        scores = aligned_similarity([grey_thumbnail(i) for i in originals],
                                    [grey_thumbnail(make(i)) for i in originals])
        print(f"  {kind:24s} found {np.mean(scores >= PIXEL_MATCH):.3f}  "
              f"(5th percentile {np.percentile(scores, 5):.4f})")
    raw_copies = {"2x resized": lambda im: np.asarray(COPIES["2x resized"](im).resize((28, 28), Image.Resampling.BOX)),
                  "JPEG q60": lambda im: np.asarray(jpeg(im, 60))}
    for split, pixels in (("t10k", test), ("train", images(args.fashion_mnist, "train"))):
        rows = unit_rows(pixels)
        index = faiss.IndexFlatIP(rows.shape[1])
        index.add(rows)
        nearest = index.search(rows, 2)[0][:, 1]
        print(f"{split}, {len(rows)} items: nearest distinct item by raw pixels p50 {np.median(nearest):.4f}, "
              f"p99 {np.percentile(nearest, 99):.4f}, {int((nearest >= 0.99).sum())} at 0.99 or more")
        for kind, make in raw_copies.items():
            sample = [Image.fromarray(a) for a in pixels[:200]]
            copies = (unit_rows(np.stack([make(i) for i in sample])) * rows[:200]).sum(axis=1)
            closer = np.mean([(nearest >= c).sum() for c in copies])
            print(f"  {kind}: copy to original median {np.median(copies):.4f}; distinct items with a neighbour at "
                  f"least that close: {closer:.0f} of {len(rows)} on average")


if __name__ == "__main__":
    main()

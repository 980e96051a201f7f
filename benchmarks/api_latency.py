"""End-to-end latency of POST /api/search: JPEG upload to JSON, from a client on the same machine.

    python benchmarks/api_latency.py --home $LOOKALIKE_HOME --requests 100

Starts `lookalike serve` on a free port over the given home (an ingested catalog), uploads Fashion-MNIST-like
test JPEGs one request at a time, and prints the median, p95 and p99 in milliseconds as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx2 as httpx
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def query_images(home: Path, n: int) -> list[bytes]:
    """JPEG uploads made from the test split's images (or any image under HOME/datasets)."""
    paths = sorted((home / "datasets" / "fashion-mnist" / "images" / "test").rglob("*.png"))
    paths = random.Random(0).sample(paths, min(n, len(paths)))
    images = []
    for path in paths:
        buffer = io.BytesIO()
        Image.open(path).convert("RGB").resize((224, 224)).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "LOOKALIKE_HOME": str(args.home)}
    server = subprocess.Popen([sys.executable, "-m", "lookalike.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        images = query_images(args.home, args.requests)
        timings = []
        with httpx.Client(base_url=base, timeout=30) as client:
            for data in images[:5]:  # warm-up
                client.post("/api/search", files={"file": ("q.jpg", data, "image/jpeg")}, data={"k": args.k})
            for data in images:
                started = time.perf_counter()
                response = client.post("/api/search", files={"file": ("q.jpg", data, "image/jpeg")},
                                       data={"k": args.k})
                timings.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
        timings.sort()
        items = httpx.get(f"{base}/api/stats").json()["items"]
        print(json.dumps({"requests": len(timings), "catalog_items": items, "k": args.k,
                          "median_ms": round(statistics.median(timings), 2),
                          "p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 2),
                          "p99_ms": round(timings[int(0.99 * (len(timings) - 1))], 2)}))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

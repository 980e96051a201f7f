"""Load and soak test: N concurrent clients doing mixed search/add/delete against a real `lookalike serve`.

    python benchmarks/soak.py --home HOME [--clients 30] [--duration 600] [--out soak.json]

HOME is an ingested catalog the run may change (use a copy: adds and deletes go through the API; each client
deletes only items it added itself). The server is started on a free localhost port with a fresh API token.
Queries and added images are JPEGs made from the catalog's own images (added ones get a unique pixel mark, so no
two adds share content). Prints (and writes to --out) one JSON object: requests served, errors, latency
p50/p95/p99/max per operation, throughput, and the server's resident memory at the start (after a warm-up) and at
the end, with the growth in percent.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import secrets
import threading
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
from common import server_process
from PIL import Image

from lookalike.catalog.repository import Catalog

OPERATIONS = ("search", "add", "delete")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def catalog_images(home: Path, n: int, seed: int = 0) -> list[tuple[str | None, Image.Image]]:
    """(category, RGB image) of a seeded sample of the catalog's readable images."""
    catalog = Catalog(f"sqlite:///{home / 'catalog.db'}")
    try:
        records = [r for r in catalog.iter_items() if Path(r.path).is_file()]
    finally:
        catalog.close()
    sample = random.Random(seed).sample(records, min(n, len(records)))
    return [(r.category, Image.open(r.path).convert("RGB").resize((128, 128))) for r in sample]


def jpeg(image: Image.Image, mark: int | None = None) -> bytes:
    """JPEG bytes of ``image``; ``mark`` paints a unique 8x8 corner so every added image has its own content."""
    if mark is not None:
        image = image.copy()
        rng = np.random.default_rng(mark)
        image.paste(Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)), (0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class Recorder:
    """Latencies and errors per operation, from all client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {op: [] for op in OPERATIONS}
        self.errors: dict[str, int] = {op: 0 for op in OPERATIONS}
        self.examples: list[str] = []

    def record(self, operation: str, seconds: float, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.latencies[operation].append(seconds * 1000)
            if not ok:
                self.errors[operation] += 1
                if len(self.examples) < 10:
                    self.examples.append(f"{operation}: {detail[:300]}")

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for operation, values in self.latencies.items():
            if not values:
                continue
            array = np.asarray(values)
            out[operation] = {"requests": len(values), "errors": self.errors[operation],
                              **{f"p{q}_ms": round(float(np.percentile(array, q)), 1) for q in (50, 95, 99)},
                              "max_ms": round(float(array.max()), 1)}
        return out


def client(number: int, base: str, token: str, images: list[tuple[str | None, Image.Image]], deadline: float,
           recorder: Recorder, mix: dict[str, float]) -> None:
    """One client: a seeded random mix of operations until ``deadline``; deletes only what it added."""
    rng = random.Random(number)
    mine: list[int] = []
    auth = {"Authorization": f"Bearer {token}"}
    names, weights = zip(*mix.items(), strict=True)
    with httpx.Client(base_url=base, timeout=120) as http:
        while time.monotonic() < deadline:
            operation = rng.choices(names, weights)[0]
            if operation == "delete" and not mine:
                operation = "add"
            started = time.perf_counter()
            try:
                if operation == "search":
                    category, image = rng.choice(images)
                    response = http.post("/api/search", files={"file": ("q.jpg", jpeg(image), "image/jpeg")},
                                         data={"k": "10"})
                    ok = response.status_code == 200 and len(response.json()["results"]) == 10
                elif operation == "add":
                    category, image = rng.choice(images)
                    mark = number * 10**7 + len(mine) * 1000 + rng.randrange(1000)
                    response = http.post("/api/items", headers=auth, data={"category": category or ""},
                                         files=[("files", (f"soak-{mark}.jpg", jpeg(image, mark), "image/jpeg"))])
                    ok = response.status_code == 201 and len(response.json()["items"]) == 1
                    if ok:
                        mine.append(response.json()["items"][0]["id"])
                else:
                    item = mine.pop(rng.randrange(len(mine)))
                    response = http.delete(f"/api/items/{item}", headers=auth)
                    ok = response.status_code == 204
                detail = f"{response.status_code} {response.text}"
            except httpx.HTTPError as exc:
                ok, detail = False, repr(exc)
            recorder.record(operation, time.perf_counter() - started, ok, detail)


def run(home: Path, clients: int, duration: float, mix: dict[str, float], warmup: float) -> dict[str, object]:
    token = secrets.token_urlsafe(24)
    images = catalog_images(home, 200)
    with server_process(home, api_token=token) as (base, server):
        rss_ready = rss_bytes(server.pid)
        items_before = httpx.get(f"{base}/api/health").json()["items"]
        recorder = Recorder()
        started = time.monotonic()
        deadline = started + duration
        threads = [threading.Thread(target=client, args=(n, base, token, images, deadline, recorder, mix),
                                    daemon=True) for n in range(clients)]
        for thread in threads:
            thread.start()
        samples: list[tuple[float, int]] = []
        while any(t.is_alive() for t in threads):
            samples.append((time.monotonic() - started, rss_bytes(server.pid)))
            time.sleep(min(5.0, max(duration / 20, 0.5)))
        for thread in threads:
            thread.join(timeout=300)
        elapsed = time.monotonic() - started
        samples.append((elapsed, rss_bytes(server.pid)))
        after_warmup = [rss for t, rss in samples if t >= warmup] or [samples[-1][1]]
        rss_start, rss_end = after_warmup[0], samples[-1][1]
        per_operation = recorder.summary()
        served = sum(s["requests"] for s in per_operation.values())
        errors = sum(s["errors"] for s in per_operation.values())
        health = httpx.get(f"{base}/api/health").json()
        return {
            "clients": clients, "duration_s": round(elapsed, 1), "mix": mix, "catalog_items_start": items_before,
            "catalog_items_end": health["items"], "requests": int(served), "errors": int(errors),
            "requests_per_s": round(served / elapsed, 1), "operations": per_operation,
            "rss_mb": {"ready": round(rss_ready / 2**20, 1), "start_after_warmup": round(rss_start / 2**20, 1),
                       "end": round(rss_end / 2**20, 1), "max": round(max(r for _, r in samples) / 2**20, 1)},
            "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 2), "warmup_s": warmup,
            "error_examples": recorder.examples,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="An ingested LOOKALIKE_HOME the run may change.")
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--duration", type=float, default=600.0, help="Seconds of load.")
    parser.add_argument("--warmup", type=float, default=None,
                        help="Seconds before the start RSS is taken (default: 10%% of the duration, at most 60).")
    parser.add_argument("--mix", default="search=0.8,add=0.1,delete=0.1", help="Operation weights.")
    parser.add_argument("--out", type=Path, help="Also write the JSON summary here.")
    args = parser.parse_args()
    mix = {name: float(weight) for name, weight in (part.split("=") for part in args.mix.split(","))}
    unknown = set(mix) - set(OPERATIONS)
    if unknown:
        parser.error(f"unknown operations in --mix: {', '.join(sorted(unknown))}")
    warmup = args.warmup if args.warmup is not None else min(60.0, args.duration / 10)
    summary = run(args.home, args.clients, args.duration, mix, warmup)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

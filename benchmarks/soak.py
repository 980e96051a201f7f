"""Load and soak test: N concurrent clients doing a mix of searches, refinements, similar items, recommendations,
adds and deletes against a real `lookalike serve` (``--workers N``).

    python benchmarks/soak.py --home HOME [--clients 30] [--duration 600] [--workers 2] [--out soak.json]
                              [--plot p99.png]

HOME is an ingested catalog the run may change (use a copy: adds and deletes go through the API; each client
deletes only items it added itself, and likes or asks "more like this" only of the catalog's own items). The server
is started on a free localhost port with a fresh API token. Queries and added images are JPEGs made from the
catalog's own images (added ones get a unique pixel mark, so no two adds share content). After the load, every
acknowledged add still kept must be there and found by its own image, and every acknowledged delete gone (a sample
of up to ``--check`` of each). Prints (and writes to --out) one JSON object: requests served, 5xx and other errors,
latency p50/p95/p99/max per operation, p99 per minute, throughput, lost writes, and the server's resident memory
(all its processes) over time, with the growth between ``--warmup`` seconds and the end; ``--plot`` draws p99 per
minute.
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

OPERATIONS = ("search", "refine", "similar", "recommend", "add", "delete")


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process and its children (a server's workers), from /proc: all of it (``VmRSS``), or
    its anonymous part (``RssAnon``: without the file pages it maps, such as the feature cache's shards, which the
    kernel can drop and read again)."""
    total = 0
    for process in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


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
    """Latencies, statuses and errors per operation, from all client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.latencies: dict[str, list[float]] = {op: [] for op in OPERATIONS}
        self.errors: dict[str, int] = {op: 0 for op in OPERATIONS}
        self.server_errors = 0  # 5xx answers
        self.timeline: list[tuple[float, float]] = []  # (seconds since start, latency ms) of every request
        self.examples: list[str] = []

    def record(self, operation: str, seconds: float, ok: bool, detail: str = "", status: int = 0) -> None:
        with self.lock:
            self.latencies[operation].append(seconds * 1000)
            self.timeline.append((time.monotonic() - self.started, seconds * 1000))
            self.server_errors += status >= 500
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

    def p99_per_minute(self) -> list[dict[str, float]]:
        minutes: dict[int, list[float]] = {}
        for at, latency in self.timeline:
            minutes.setdefault(int(at // 60), []).append(latency)
        return [{"minute": m + 1, "requests": len(v), "p99_ms": round(float(np.percentile(v, 99)), 1)}
                for m, v in sorted(minutes.items())]


class Written:
    """What the clients' acknowledged writes left: items that must be there, and items that must be gone."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kept: dict[int, bytes] = {}  # id -> the image added
        self.deleted: dict[int, bytes] = {}

    def added(self, item: int, image: bytes) -> None:
        with self.lock:
            self.kept[item] = image

    def removed(self, item: int) -> None:
        with self.lock:
            self.deleted[item] = self.kept.pop(item)


def client(number: int, base: str, token: str, images: list[tuple[str | None, Image.Image]], deadline: float,
           recorder: Recorder, mix: dict[str, float], written: Written, catalog_max_id: int) -> None:
    """One client (one shopper): a seeded random mix of operations until ``deadline``; deletes only what it added,
    likes and asks for items like only the catalog's own items."""
    rng = random.Random(number)
    mine: list[int] = []
    auth = {"Authorization": f"Bearer {token}"}
    shopper = {"X-Shopper-Id": f"soak-{number}"}
    names, weights = zip(*mix.items(), strict=True)
    last_query: int | None = None
    seen: list[int] = []  # catalog items of this client's last results
    with httpx.Client(base_url=base, timeout=120) as http:
        while time.monotonic() < deadline:
            operation = rng.choices(names, weights)[0]
            if operation == "delete" and not mine:
                operation = "add"
            if operation in ("refine", "similar") and not seen:
                operation = "search"
            started = time.perf_counter()
            try:
                if operation == "search":
                    category, image = rng.choice(images)
                    response = http.post("/api/search", files={"file": ("q.jpg", jpeg(image), "image/jpeg")},
                                         data={"k": "10"}, headers=shopper)
                    ok = response.status_code == 200 and len(response.json()["results"]) == 10
                    if ok:
                        last_query = response.json()["query_id"]
                        seen = [r["id"] for r in response.json()["results"] if r["id"] <= catalog_max_id]
                elif operation == "refine":
                    response = http.post("/api/search/refine", headers=shopper, json={
                        "query_id": last_query, "liked": [rng.choice(seen)], "k": 10})
                    ok = response.status_code == 200 and len(response.json()["results"]) == 10
                elif operation == "similar":
                    response = http.get(f"/api/items/{rng.choice(seen)}/similar", params={"k": 10}, headers=shopper)
                    ok = response.status_code == 200 and len(response.json()["results"]) == 10
                elif operation == "recommend":
                    response = http.get("/api/recommendations", params={"k": 10}, headers=shopper)
                    ok = response.status_code == 200
                elif operation == "add":
                    category, image = rng.choice(images)
                    mark = number * 10**7 + len(mine) * 1000 + rng.randrange(1000)
                    data = jpeg(image, mark)
                    response = http.post("/api/items", headers=auth, data={"category": category or ""},
                                         files=[("files", (f"soak-{mark}.jpg", data, "image/jpeg"))])
                    ok = response.status_code == 201 and len(response.json()["items"]) == 1
                    if ok:
                        mine.append(response.json()["items"][0]["id"])
                        written.added(mine[-1], data)
                else:
                    item = mine.pop(rng.randrange(len(mine)))
                    response = http.delete(f"/api/items/{item}", headers=auth)
                    ok = response.status_code == 204
                    if ok:
                        written.removed(item)
                detail, status = f"{response.status_code} {response.text}", response.status_code
            except httpx.HTTPError as exc:
                ok, detail, status = False, repr(exc), 0
            recorder.record(operation, time.perf_counter() - started, ok, detail, status)


def lost_writes(base: str, written: Written, check: int, seed: int = 0) -> dict[str, int]:
    """Acknowledged adds that are not there or not found by their own image, and acknowledged deletes still there
    or still found (a sample of ``check`` of each)."""
    rng = random.Random(seed)
    kept = rng.sample(sorted(written.kept), min(check, len(written.kept)))
    deleted = rng.sample(sorted(written.deleted), min(check, len(written.deleted)))
    lost_adds = lost_deletes = 0
    with httpx.Client(base_url=base, timeout=120) as http:
        for item in kept:
            found = http.post("/api/search", files={"file": ("q.jpg", written.kept[item], "image/jpeg")},
                              data={"k": "10"}).json()["results"]
            lost_adds += http.get(f"/api/items/{item}").status_code != 200 or item not in [r["id"] for r in found]
        for item in deleted:
            found = http.post("/api/search", files={"file": ("q.jpg", written.deleted[item], "image/jpeg")},
                              data={"k": "10"}).json()["results"]
            lost_deletes += http.get(f"/api/items/{item}").status_code != 404 or item in [r["id"] for r in found]
    return {"adds_checked": len(kept), "adds_lost": lost_adds, "deletes_checked": len(deleted),
            "deletes_undone": lost_deletes, "adds_acknowledged_kept": len(written.kept),
            "deletes_acknowledged": len(written.deleted)}


def plot(per_minute: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.5))
    axes.plot([m["minute"] for m in per_minute], [m["p99_ms"] for m in per_minute], marker="o")
    axes.set_xlabel("minute of the run")
    axes.set_ylabel("p99 latency, ms (all operations)")
    axes.set_ylim(bottom=0)
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run(home: Path, clients: int, duration: float, mix: dict[str, float], warmup: float, workers: int = 1,
        check: int = 100, server_log: Path | None = None) -> tuple[dict[str, object], list[dict[str, float]]]:
    token = secrets.token_urlsafe(24)
    images = catalog_images(home, 200)
    with server_process(home, server_log, api_token=token, workers=str(workers)) as (base, server):
        rss_ready = rss_bytes(server.pid)
        items_before = httpx.get(f"{base}/api/health").json()["items"]
        catalog = Catalog(f"sqlite:///{home / 'catalog.db'}")
        catalog_max_id = max(catalog.ids(), default=0)
        catalog.close()
        recorder, written = Recorder(), Written()
        started = recorder.started
        deadline = started + duration
        threads = [threading.Thread(target=client, args=(n, base, token, images, deadline, recorder, mix, written,
                                                         catalog_max_id), daemon=True) for n in range(clients)]
        for thread in threads:
            thread.start()
        samples: list[tuple[float, int, int]] = []  # (seconds, resident, anonymous)
        while any(t.is_alive() for t in threads):
            samples.append((time.monotonic() - started, rss_bytes(server.pid), rss_bytes(server.pid, "RssAnon")))
            time.sleep(min(5.0, max(duration / 20, 0.5)))
        for thread in threads:
            thread.join(timeout=300)
        elapsed = time.monotonic() - started
        samples.append((elapsed, rss_bytes(server.pid), rss_bytes(server.pid, "RssAnon")))
        after_warmup = [(rss, anon) for t, rss, anon in samples if t >= warmup] or [samples[-1][1:]]
        (rss_start, anon_start), rss_end, anon_end = after_warmup[0], samples[-1][1], samples[-1][2]
        per_operation = recorder.summary()
        served = sum(s["requests"] for s in per_operation.values())
        errors = sum(s["errors"] for s in per_operation.values())
        health = httpx.get(f"{base}/api/health").json()
        lost = lost_writes(base, written, check)
        per_minute = recorder.p99_per_minute()
        return {
            "clients": clients, "workers": workers, "duration_s": round(elapsed, 1), "mix": mix,
            "catalog_items_start": items_before, "catalog_items_end": health["items"], "requests": int(served),
            "errors": int(errors), "server_errors_5xx": recorder.server_errors,
            "requests_per_s": round(served / elapsed, 1), "operations": per_operation,
            "p99_per_minute": per_minute, "writes": lost,
            "rss_mb": {"ready": round(rss_ready / 2**20, 1), "start_after_warmup": round(rss_start / 2**20, 1),
                       "end": round(rss_end / 2**20, 1), "max": round(max(r for _, r, _ in samples) / 2**20, 1)},
            "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 2), "warmup_s": warmup,
            "anonymous_mb": {"start_after_warmup": round(anon_start / 2**20, 1), "end": round(anon_end / 2**20, 1)},
            "anonymous_growth_pct": round(100 * (anon_end - anon_start) / anon_start, 2),
            "rss_samples_mb": [(round(t, 1), round(r / 2**20, 1), round(a / 2**20, 1)) for t, r, a in samples],
            "error_examples": recorder.examples,
        }, per_minute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="An ingested LOOKALIKE_HOME the run may change.")
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--duration", type=float, default=600.0, help="Seconds of load.")
    parser.add_argument("--warmup", type=float, default=None,
                        help="Seconds before the start RSS is taken (default: 10%% of the duration, at most 60).")
    parser.add_argument("--mix", default="search=0.55,refine=0.1,similar=0.1,recommend=0.05,add=0.1,delete=0.1",
                        help="Operation weights.")
    parser.add_argument("--workers", type=int, default=1, help="Server processes.")
    parser.add_argument("--check", type=int, default=100, help="Adds and deletes checked afterwards.")
    parser.add_argument("--out", type=Path, help="Also write the JSON summary here.")
    parser.add_argument("--plot", type=Path, help="Draw p99 latency per minute into this PNG.")
    parser.add_argument("--server-log", type=Path, help="Keep the server's log here.")
    args = parser.parse_args()
    mix = {name: float(weight) for name, weight in (part.split("=") for part in args.mix.split(","))}
    unknown = set(mix) - set(OPERATIONS)
    if unknown:
        parser.error(f"unknown operations in --mix: {', '.join(sorted(unknown))}")
    warmup = args.warmup if args.warmup is not None else min(60.0, args.duration / 10)
    summary, per_minute = run(args.home, args.clients, args.duration, mix, warmup, args.workers, args.check,
                               args.server_log)
    if args.plot:
        title = (f"{args.clients} clients, {args.workers} workers, {summary['catalog_items_start']:,} items: "
                 "p99 latency per minute")
        plot(per_minute, args.plot, title)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

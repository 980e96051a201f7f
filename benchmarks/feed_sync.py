"""Feed sync against ingest from disk, side by side: the same product photos, synced from a feed over HTTP or
ingested from their folder.

    python benchmarks/feed_sync.py --skus 5000 --rounds 2 [--work /tmp/feedbench]

A catalog of 600x800 product JPEGs (every fourth SKU has a second photo) is served by a separate
``python -m http.server`` process on 127.0.0.1 (HTTP/1.0, ``Last-Modified`` / ``If-Modified-Since``), with a
Google-Merchant-style CSV feed naming each SKU's image URLs. Each round, interleaved, into fresh homes (fresh
feature caches; models loaded before the clock starts):
- ``ingest``: `lookalike ingest`'s pipeline over the image folder (read, hash, decode, backbone, catalog, index);
- ``sync``: `lookalike sync`'s over the feed URL (download with the default limits, keep by content, decode,
  backbone, catalog, index);
- ``resync``: the same feed again over the synced home (every image asked conditionally; nothing should change).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import free_port, machine, median, process_tree_cpu, write_catalog_jpegs

from lookalike.bootstrap import feed_sync, load_extractor, open_engine
from lookalike.config import Settings
from lookalike.data.sources import open_source
from lookalike.ingest import ingest
from lookalike.sync import load_feed

RESULTS = Path(__file__).parent / "results" / "feed_sync.json"


def write_feed(catalog: Path, skus: int) -> tuple[Path, int]:
    """A feed of ``skus`` products over the catalog's images (every fourth product has two); returns its path and
    how many images it names."""
    images = sorted(p.relative_to(catalog).as_posix() for p in catalog.rglob("*.jpg"))
    rows, used = ["id,title,image_link,additional_image_link,price,product_type,link"], 0
    for n in range(skus):
        first = images[used]
        second = images[used + 1] if n % 4 == 0 else ""
        used += 2 if second else 1
        category = first.split("/")[0]
        rows.append(f"SKU-{n:06d},{category} {n},BASE/{first},{'BASE/' + second if second else ''},"
                    f"{10 + n % 90}.00 USD,Apparel > {category},https://shop.example/{n}")
    feed = catalog / "feed.csv"
    feed.write_text("\n".join(rows))
    return feed, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/feedbench"))
    parser.add_argument("--per-host", type=int, help="Downloads at once from the one host (default: the setting's).")
    args = parser.parse_args()
    images_needed = args.skus + (args.skus + 3) // 4
    catalog = write_catalog_jpegs(args.work / "catalog", images_needed)
    feed, images = write_feed(catalog, args.skus)
    port = free_port()
    served = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                               str(catalog)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    feed.write_text(feed.read_text().replace("BASE/", f"{base}/"))
    folder = args.work / "images-only"
    if not folder.exists():  # the ingest's catalog: the same files, without the feed
        shutil.copytree(catalog, folder, ignore=shutil.ignore_patterns("feed.csv", ".complete"))
    models = args.work / "models"
    common = {"models_dir": models, "fetch_allow_hosts": ["127.0.0.1"], "_env_file": None}
    if args.per_host:
        common["fetch_per_host"] = args.per_host
    load_extractor(Settings(home=args.work / "warm", **common))  # export the backbone once, outside the clock
    rows = []
    try:
        time.sleep(1)
        for round_number in range(1, args.rounds + 1):
            row: dict[str, float] = {}
            ingest_home, sync_home = args.work / "home-ingest", args.work / "home-sync"
            for home in (ingest_home, sync_home):
                shutil.rmtree(home, ignore_errors=True)
            settings = Settings(home=ingest_home, **common)
            with open_engine(settings) as engine:
                started, cpu = time.perf_counter(), time.process_time()
                report = ingest(engine, open_source(folder))
                row["ingest_s"] = time.perf_counter() - started
                row["ingest_cpu_ms_per_image"] = (time.process_time() - cpu) * 1000 / images
            assert report.added == images, report
            settings = Settings(home=sync_home, **common)
            with open_engine(settings) as engine, feed_sync(settings, engine) as syncer:
                started, cpu, server = time.perf_counter(), time.process_time(), process_tree_cpu(served.pid)
                first = syncer.run(load_feed(f"{base}/feed.csv", syncer.fetcher))
                row["sync_s"] = time.perf_counter() - started
                row["sync_cpu_ms_per_image"] = (time.process_time() - cpu) * 1000 / images
                row["server_cpu_ms_per_image"] = (process_tree_cpu(served.pid) - server) * 1000 / images
            assert (first.added, first.failed, first.downloaded) == (args.skus, 0, images), first.counts()
            with open_engine(settings) as engine, feed_sync(settings, engine) as syncer:
                started = time.perf_counter()
                again = syncer.run(load_feed(f"{base}/feed.csv", syncer.fetcher))
                row["resync_s"] = time.perf_counter() - started
            assert (again.unchanged, again.downloaded) == (args.skus, 0), again.counts()
            row |= {"ingest_images_per_s": images / row["ingest_s"], "sync_images_per_s": images / row["sync_s"],
                    "not_modified": again.not_modified}
            row["sync_vs_ingest"] = row["sync_images_per_s"] / row["ingest_images_per_s"]
            rows.append(row)
            print(f"round {round_number}: " + ", ".join(f"{k} {v:,.2f}" for k, v in row.items()), flush=True)
    finally:
        server_cpu = process_tree_cpu(served.pid)
        served.terminate()
    per_host = Settings(**common).fetch_per_host  # type: ignore[arg-type]
    summary = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "skus": args.skus, "images": images,
               "per_host": per_host, "server_cpu_s": round(server_cpu, 1),
               "rounds": rows, "median": {k: median([r[k] for r in rows]) for k in rows[0]}}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["median"], indent=2))


if __name__ == "__main__":
    main()

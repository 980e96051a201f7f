"""`lookalike sync` against a real HTTP server on 127.0.0.1 that serves a Google Merchant feed and its images, some
of which misbehave: counts and report after a first sync, after a re-sync of the same feed (nothing downloaded), after
a changed feed (prices, images, rows removed with --prune, rows added); the prune guard; and syncs SIGKILLed at random
moments, then finished, leave every SKU exactly once with the index agreeing with the catalog."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

from PIL import Image

from lookalike.bootstrap import open_engine
from lookalike.config import Settings

from feedserver import FeedServer, Route, feed_server
from imagegen import PRODUCT_CATEGORIES, jpeg_bytes, make_product, write_tiny_backbone
from killing import kill_repeatedly

HEADER = "id\ttitle\timage_link\tadditional_image_link\tprice\tbrand\tproduct_type\tlink"


def serve_products(server: FeedServer, skus: list[str], *, second_image: bool = True, price: float = 10.0,
                   version: int = 0) -> list[str]:
    """Register each SKU's images (a second one for every other SKU) and return its feed rows."""
    rows = []
    for n, sku in enumerate(skus):
        category = PRODUCT_CATEGORIES[n % len(PRODUCT_CATEGORIES)]
        server.routes[f"/img/{sku}.jpg"] = Route(jpeg_bytes(make_product(category, n + 100 * version, 96)))
        extra = ""
        if second_image and n % 2 == 0:
            server.routes[f"/img/{sku}-back.jpg"] = Route(jpeg_bytes(make_product(category, n + 1000, 96)))
            extra = f"{server.url}/img/{sku}-back.jpg"
        rows.append(f"{sku}\t{category} {sku}\t{server.url}/img/{sku}.jpg\t{extra}\t{price:.2f} USD\tAcme\t"
                    f"Apparel > {category}\thttps://shop.example/{sku}")
    return rows


def publish(server: FeedServer, rows: list[str]) -> str:
    server.routes["/feed.tsv"] = Route("\n".join([HEADER, *rows]).encode(), content_type="text/tab-separated-values")
    return f"{server.url}/feed.tsv"


def image_downloads(server: FeedServer, skus: list[str]) -> int:
    """Images of these products sent in full (200 with the body)."""
    return sum(n for path, n in server.downloads.items() if path.split("/")[-1].split(".")[0].removesuffix("-back")
               in skus)


class Cli:
    def __init__(self, home: Path, backbone: str) -> None:
        self.home = home
        self.env = {**os.environ, "LOOKALIKE_HOME": str(home), "LOOKALIKE_BACKBONE": backbone,
                    "LOOKALIKE_FETCH_ALLOW_HOSTS": "127.0.0.1", "LOOKALIKE_FETCH_TIMEOUT": "0.5",
                    "LOOKALIKE_FETCH_RETRIES": "1", "LOOKALIKE_MAX_UPLOAD_MB": "0.5"}
        self.settings = Settings(home=home, backbone=backbone, _env_file=None)  # type: ignore[call-arg]

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "lookalike.cli", *args], env=self.env, capture_output=True,
                                text=True, timeout=300)
        assert (result.returncode == 0) == ok, result.stdout + result.stderr
        return result

    def sync(self, url: str, *args: str, ok: bool = True) -> dict:
        report = self.home.parent / "report.json"
        report.unlink(missing_ok=True)
        self("sync", url, "--report", str(report), *args, ok=ok)
        return json.loads(report.read_text()) if report.exists() else {}

    def catalog(self, cached: bool = False) -> dict[str, tuple[dict, list[str]]]:
        """SKU -> (attributes, the content hashes of its items); asserts the index holds exactly the catalog (and,
        if ``cached``, that the feature cache has every item's features)."""
        engine = open_engine(self.settings)
        try:
            records = list(engine.catalog.iter_items())
            assert sorted(engine.store.ids().tolist()) == sorted(r.id for r in records)
            if cached and engine.featurizer.cache is not None:
                assert engine.featurizer.cache.get([r.content_hash for r in records])[0].all()
            products = engine.catalog.products.get(engine.catalog.products.skus())
            assert sum(len(p.items) for p in products.values()) == len(records)
            return {sku: (p.attributes, [r.content_hash for r in p.items]) for sku, p in products.items()}
        finally:
            engine.close()


def test_a_feed_is_synced_then_resynced_then_changed(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", write_tiny_backbone(tmp_path / "model"))
    cli.env["LOOKALIKE_CHECKPOINT_EVERY"] = "3"  # index checkpoints from the writer thread while features are cached
    with feed_server() as server:
        good = [f"SKU-{i}" for i in range(6)]
        rows = serve_products(server, good)
        server.routes["/img/FLAKY.jpg"] = Route(jpeg_bytes(make_product("tees", 77, 96)), status=[500])
        server.routes["/img/slow.jpg"] = Route(jpeg_bytes(make_product("tees", 78, 96)), delay=2.0)
        server.routes["/img/loop.jpg"] = Route(redirect="/img/loop.jpg")
        server.routes["/img/huge.jpg"] = Route(b"\xff\xd8\xff" + b"0" * 600_000)
        server.routes["/img/error.jpg"] = Route(b"<!DOCTYPE html><html>Server error</html>")
        troubled = {"FLAKY": f"{server.url}/img/FLAKY.jpg", "SLOW": f"{server.url}/img/slow.jpg",
                    "MISSING": f"{server.url}/img/missing.jpg", "LOOP": f"{server.url}/img/loop.jpg",
                    "HUGE": f"{server.url}/img/huge.jpg", "HTML": f"{server.url}/img/error.jpg",
                    "PRIVATE": "http://10.20.30.40/img/a.jpg"}
        rows += [f"{sku}\t{sku}\t{url}\t\t5.00 USD\tAcme\tApparel > tees\t" for sku, url in troubled.items()]
        rows.append("\tno SKU\thttp://127.0.0.1/x.jpg\t\t1.00 USD\t\t\t")
        url = publish(server, rows)

        first = cli.sync(url)
        counts = first["counts"]
        assert (counts["products"], counts["added"], counts["failed"]) == (13, 7, 7)  # 6 good + the flaky one
        reasons = {f.get("sku"): f["reason"] for f in first["failures"]}
        assert reasons[None] == "no SKU"
        assert "timed out" in reasons["SLOW"] and "HTTP 404" in reasons["MISSING"]
        assert "more than 5 redirects" in reasons["LOOP"] and "larger than" in reasons["HUGE"]
        assert "HTML page" in reasons["HTML"] and "non-public address" in reasons["PRIVATE"]
        catalog = cli.catalog(cached=True)
        assert sorted(catalog) == sorted([*good, "FLAKY"])
        assert [len(catalog[sku][1]) for sku in good] == [2, 1, 2, 1, 2, 1]
        assert catalog["SKU-1"][0] == {"title": "dresses SKU-1", "price": 10.0, "currency": "USD", "brand": "Acme",
                                       "link": "https://shop.example/SKU-1"}
        info = json.loads(cli("info", "--json").stdout)
        assert (info["products"], info["items"]) == (7, 10)

        server.reset_counts()
        again = cli.sync(url)["counts"]
        assert (again["unchanged"], again["added"], again["reimaged"], again["updated"]) == (7, 0, 0, 0)
        assert again["downloaded"] == 0 and again["not_modified"] == 10
        assert image_downloads(server, [*good, "FLAKY"]) == 0
        assert cli.catalog() == catalog

        # prices change for two, SKU-2's image changes behind its URL, SKU-3 gets a new URL, SKU-4 and SKU-5 leave,
        # NEW-1 arrives; the troubled rows are gone too
        changed = serve_products(server, ["SKU-0", "SKU-1"], price=12.5)
        changed += serve_products(server, ["SKU-2"], version=1)
        server.routes["/img/SKU-3-v2.jpg"] = Route(jpeg_bytes(make_product("tees", 300, 96)))
        changed.append(f"SKU-3\tSKU-3 v2\t{server.url}/img/SKU-3-v2.jpg\t\t10.00 USD\tAcme\tApparel > tees\t")
        changed += serve_products(server, ["NEW-1"], version=2)
        changed.append(rows[6])  # FLAKY, unchanged
        url = publish(server, changed)
        refused = cli("sync", url, "--prune", ok=False)  # SKU-4, SKU-5: 2 of 7 products, over the 20% guard
        assert "lacks 2 of the catalog's 7 products" in refused.stderr and cli.catalog() == catalog
        server.reset_counts()
        result = cli.sync(url, "--prune", "--force")["counts"]
        assert (result["updated"], result["reimaged"], result["added"], result["removed"]) == (2, 2, 1, 2)
        assert result["unchanged"] == 1 and result["failed"] == 0
        now = cli.catalog()
        assert sorted(now) == ["FLAKY", "NEW-1", "SKU-0", "SKU-1", "SKU-2", "SKU-3"]
        assert now["SKU-0"][0]["price"] == 12.5 and now["SKU-0"][1] == catalog["SKU-0"][1]  # same images
        assert now["SKU-2"][1] != catalog["SKU-2"][1] and now["SKU-3"][1] != catalog["SKU-3"][1]
        assert server.downloads["/img/SKU-0.jpg"] == 0 and server.downloads["/img/SKU-2.jpg"] == 1

        search = cli("search", str(tmp_path / "query.jpg"), "--json", ok=False)  # the query does not exist yet
        assert search.returncode == 2
        Image.open(io.BytesIO(server.routes["/img/NEW-1.jpg"].body)).save(tmp_path / "query.jpg")
        hits = json.loads(cli("search", str(tmp_path / "query.jpg"), "--json", "-k", "3").stdout)["results"]
        assert hits[0]["sku"] == "NEW-1" and hits[0]["product"]["title"].endswith("NEW-1")


def test_sigkilled_syncs_then_a_final_one_leave_every_sku_once(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", write_tiny_backbone(tmp_path / "model"))
    cli.env["LOOKALIKE_CHECKPOINT_EVERY"] = "40"
    with feed_server() as server:
        skus = [f"P{i:03d}" for i in range(300)]
        rows = serve_products(server, skus)
        for route in server.routes.values():
            route.delay = 0.01  # a sync takes a few seconds: time for the kills to land mid-way
        url = publish(server, rows)
        command = [sys.executable, "-m", "lookalike.cli", "sync", url]
        rng = random.Random(5)
        kills = kill_repeatedly(command, cli.env, rng, runs=4, window=(1.5, 4.0),
                                after_each=lambda: cli.catalog())  # consistent after every kill
        assert kills >= 3, f"only {kills} kills landed: the sync finished too soon"
        final = cli.sync(url)["counts"]
        assert final["failed"] == 0
        catalog = cli.catalog()
        assert sorted(catalog) == skus
        assert all(len(hashes) == (2 if n % 2 == 0 else 1) for n, (_, hashes) in enumerate(catalog[s] for s in skus))

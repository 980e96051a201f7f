"""Keeping the catalog in step with a merchant's product feed, by SKU.

A product whose SKU is new is added; one whose images changed (their URLs, or the bytes behind a URL, which a
conditional request finds out) or whose category changed gets new items, and its old ones leave the index; one whose
attributes alone changed is updated without touching an image; an unchanged one is left alone. With ``prune``, the
products absent from the feed are removed, but never more than ``PRUNE_LIMIT`` of them unless ``force``.

Images are downloaded once (``io.fetch``), kept by content (``io.blobs``) and remembered by URL with their HTTP
validators (``catalog.downloads``), so a second sync of the same feed downloads nothing. A row or an image that
fails is reported and, since nothing of it is written, tried again by the next sync; a product keeps the images
that did download.

Durability is ingest's: products are written a chunk at a time, each chunk in one transaction that replaces
their items, then the index follows; the index lags the database only until the engine next opens, when
``ingest.reconcile`` repairs it. The old items of a product leave the database in the transaction that adds the
new ones, so a search, which reads the results' items from the database, never shows a product's stale image.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.catalog.products import DownloadRecord, ProductChange, ProductRecord
from lookalike.catalog.records import NewItem
from lookalike.concurrency import bounded_map
from lookalike.data.feeds import Feed, FeedProduct, read_feed
from lookalike.engine import Engine
from lookalike.errors import CatalogSourceError, FetchError, ImageDecodeError, InvalidRequestError
from lookalike.hashing import content_key
from lookalike.io.blobs import ImageStore
from lookalike.io.fetch import Fetcher
from lookalike.io.images import read_image_file, sniff_image
from lookalike.metrics import SYNCS

log = logging.getLogger(__name__)

PRUNE_LIMIT = 0.2  # the largest share of the catalog's products a sync removes without ``force``
CHUNK = 64  # products downloaded, planned and written at a time
MAX_FEED_BYTES = 2**30


@dataclass
class SyncReport:
    """What a sync did: counts of products by outcome, of images by how they were had, and every failure."""

    products: int = 0  # in the feed
    added: int = 0
    reimaged: int = 0  # new images (or a new category): new items, the old ones gone
    updated: int = 0  # attributes only
    unchanged: int = 0
    removed: int = 0
    failed: int = 0  # products not written (no image could be had) and rows that are not products
    downloaded: int = 0
    not_modified: int = 0  # images the server said had not changed (304)
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("products", "added", "reimaged", "updated", "unchanged", "removed",
                                               "failed", "downloaded", "not_modified")} | {
            "images_failed": sum(1 for f in self.failures if f.get("url")), "seconds": round(self.seconds, 2)}


class SyncRefusedError(InvalidRequestError):
    """A sync would remove more of the catalog than it may without ``force``."""


Progress = Callable[[int, int, "SyncReport"], None]  # (products done, products in the feed, the report so far)


class _ItemPaths:
    """The path each new item gets: its stored image's own, unless another item has that one (the same picture in
    two products, or twice in one), then a link of its own (``ImageStore.item_path``). ``taken``: the paths of the
    catalog's items and of the items planned so far."""

    def __init__(self, images: ImageStore) -> None:
        self.images, self.taken = images, set[str]()

    def take(self, stored: Path, sku: str, position: int, own: set[str]) -> str:
        """``own``: the paths of the items the new one replaces (they leave in the same transaction)."""
        path = str(stored)
        if path in self.taken and path not in own:
            path = str(self.images.item_path(stored, sku, position))
        own.discard(path)
        self.taken.add(path)
        return path


@dataclass
class _Planned:
    """A chunk's changes on their way to the database: the vectors of its new items as they come, and how many
    are still to come."""

    changes: list[ProductChange]
    current: dict[str, ProductRecord]
    products: int
    remaining: int = 0
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class _Image:
    url: str
    key: str | None = None
    path: Path | None = None
    error: str | None = None
    how: str = "read"  # "downloaded", "not modified" (a 304) or "read" (a local file)


def load_feed(source: str, fetcher: Fetcher, mapping: dict[str, str] | None = None) -> Feed:
    """Read a feed from a file or an http(s) URL. Only a local feed's images may be local files (relative paths are
    taken from the feed's folder)."""
    if source.startswith(("http://", "https://")):
        return read_feed(fetcher.fetch(source, image=False, max_bytes=MAX_FEED_BYTES).data or b"", source, mapping)
    path = Path(source).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogSourceError(f"cannot read the feed {path}: {exc.strerror or exc}") from None
    feed = read_feed(data, path.name, mapping)
    folder = path.resolve().parent
    for product in feed.products:
        product.images = [u if u.startswith(("http://", "https://")) or "://" in u else str(folder / u)
                          for u in product.images]
    feed.local_files = True
    return feed


class FeedSync:
    """Syncs feeds into an engine's catalog (see the module docstring); closes its fetcher when done."""

    def __init__(self, engine: Engine, images: ImageStore, fetcher: Fetcher) -> None:
        self.engine, self.images, self.fetcher = engine, images, fetcher
        self._local_files = False

    def __enter__(self) -> FeedSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fetcher.close()

    def run(self, feed: Feed, *, prune: bool = False, force: bool = False, progress: Progress | None = None
            ) -> SyncReport:
        """Apply the feed (see the module docstring); counted in ``lookalike_syncs_total`` by outcome."""
        try:
            report = self._run(feed, prune=prune, force=force, progress=progress)
        except BaseException:
            SYNCS.labels("failed").inc()
            raise
        SYNCS.labels("succeeded").inc()
        return report

    def _run(self, feed: Feed, *, prune: bool, force: bool, progress: Progress | None) -> SyncReport:
        started = time.perf_counter()
        self._local_files = feed.local_files
        report = SyncReport(products=len(feed.products))
        report.failures += [{"row": row, "sku": sku, "reason": reason} for row, sku, reason in feed.failures]
        report.failed += len(feed.failures)
        gone = sorted(set(self.engine.catalog.products.skus()) - {p.sku for p in feed.products}) if prune else []
        known = self.engine.catalog.products.count()
        if gone and len(gone) > PRUNE_LIMIT * known and not force:
            raise SyncRefusedError(f"the feed lacks {len(gone)} of the catalog's {known} products (more than "
                                   f"{PRUNE_LIMIT:.0%}): nothing was changed; check the feed, or prune with --force")
        chunks = [feed.products[start : start + CHUNK] for start in range(0, len(feed.products), CHUNK)]
        self._stream(chunks, report, progress, len(feed.products))
        if gone:
            report.removed = self.remove(gone)
        self.engine.store.optimize(self.engine.memory_budget_bytes)
        self.engine.save()
        report.seconds = time.perf_counter() - started
        return report

    def remove(self, skus: Sequence[str]) -> int:
        """Remove products and their items: from the index first, so no search meets one half-gone."""
        found = self.engine.catalog.products.get(skus)
        items = [r for p in found.values() for r in p.items]
        self.engine.store.remove(np.array([r.id for r in items], np.int64))
        removed = self.engine.catalog.products.delete(found)
        self.images.forget([r.path for r in items], keep=set())
        return removed

    def _download(self, products: list[FeedProduct]
                  ) -> tuple[list[FeedProduct], dict[str, ProductRecord], dict[str, _Image]]:
        """The chunk's products as the catalog has them, and their images (downloaded, or found unchanged); runs
        in a worker thread."""
        current = self.engine.catalog.products.get(p.sku for p in products)
        urls = list(dict.fromkeys(u for p in products for u in p.images))
        return products, current, {image.url: image for image in self._acquire(urls)}

    def _stream(self, chunks: list[list[FeedProduct]], report: SyncReport, progress: Progress | None,
                total: int) -> None:
        """Download, plan, embed and write the chunks as one stream: the next chunk downloads while this one's
        images go through the backbone, and each chunk is written, by a writer thread, once its last image has
        (in feed order), so the backbone never waits for the database."""
        paths = _ItemPaths(self.images)
        pending: deque[_Planned] = deque()
        writing: deque[tuple[_Planned, Future[dict[str, int]]]] = deque()
        since_save = [0]  # touched by the writer thread only
        done = 0

        def write(planned: _Planned) -> dict[str, int]:
            outcome = self._write(planned)
            since_save[0] += outcome["items"]
            if since_save[0] >= self.engine.checkpoint_every:
                self.engine.store.save()  # the index only: the featurizer flushes the feature cache, in its thread
                since_save[0] = 0
            return outcome

        def collect(wait: bool) -> None:
            nonlocal done
            while writing and (wait or writing[0][1].done()):
                planned, future = writing.popleft()
                outcome = future.result()
                for key in ("added", "reimaged", "failed"):
                    setattr(report, key, getattr(report, key) + outcome[key])
                done += planned.products
                if progress:
                    progress(done, total, report)

        def write_ready() -> None:
            while pending and pending[0].remaining == 0:
                planned = pending.popleft()
                writing.append((planned, writer.submit(write, planned)))
            collect(wait=False)

        def new_items() -> Iterator[tuple[_Planned, NewItem]]:
            for products, current, had in bounded_map(self._download, chunks, 2, 3):
                report.downloaded += sum(1 for i in had.values() if i.how == "downloaded")
                report.not_modified += sum(1 for i in had.values() if i.how == "not modified")
                paths.taken |= self.engine.catalog.known_paths(str(i.path) for i in had.values() if i.path)
                planned = self._plan(products, current, had, paths, report)
                pending.append(planned)
                yield from ((planned, item) for change in planned.changes for item in change.items or [])
                write_ready()

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lookalike-sync-writer") as writer:
            for batch in self.engine.featurizer.iter_batches(new_items(), lambda pair: Path(pair[1].path)):
                for (planned, item), reason in batch.failures:
                    report.failures.append({"sku": item.sku, "url": item.image_url, "reason": reason})
                    planned.remaining -= 1
                vectors = self.engine.embed(batch.features) if batch.items else np.zeros((0, 0), np.float32)
                for (planned, item), vector in zip(batch.items, vectors, strict=True):
                    planned.vectors[item.path] = vector
                    planned.remaining -= 1
                write_ready()
            write_ready()
            collect(wait=True)

    def _plan(self, products: list[FeedProduct], current: dict[str, ProductRecord], had: dict[str, _Image],
              paths: _ItemPaths, report: SyncReport) -> _Planned:
        """What to write for a chunk of products, given their images."""
        changes: list[ProductChange] = []
        for product in products:
            images = [had[u] for u in dict.fromkeys(product.images)]
            good = [i for i in images if i.error is None]
            report.failures += [{"row": product.row, "sku": product.sku, "url": i.url, "reason": i.error}
                                for i in images if i.error is not None]
            if not good:
                report.failed += 1
                continue
            change = self._change(product, good, current.get(product.sku), paths, report)
            if change is not None:
                changes.append(change)
        return _Planned(changes, current, len(products), remaining=sum(len(c.items or []) for c in changes))

    def _change(self, product: FeedProduct, images: list[_Image], current: ProductRecord | None, paths: _ItemPaths,
                report: SyncReport) -> ProductChange | None:
        urls = [i.url for i in images]
        change = ProductChange(product.sku, product.category, product.attributes, urls)
        shown = [(r.image_url, r.content_hash) for r in current.items] if current else []
        if current is None or shown != [(i.url, i.key) for i in images] or current.category != product.category:
            own = {r.path for r in current.items} if current else set()
            change.items = [NewItem(paths.take(i.path, product.sku, n, own), i.key or "", product.category,
                                    product.sku, {"position": n}, product.sku, i.url)
                            for n, i in enumerate(images) if i.path is not None]
            change.replaced = [r.id for r in current.items] if current else []
            return change
        if current.attributes != product.attributes or current.image_urls != urls:
            report.updated += 1
            return change
        report.unchanged += 1
        return None

    def _write(self, planned: _Planned) -> dict[str, int]:
        """Write a chunk in one transaction (its images embedded), then bring the index in step; returns how many
        products were added, re-imaged or failed (no image could be embedded), and the items added."""
        engine, vectors, current = self.engine, planned.vectors, planned.current
        changes = planned.changes
        for change in changes:
            if change.items is not None:
                change.items = [i for i in change.items if i.path in vectors]
        outcome = {"failed": sum(1 for c in changes if c.items == []), "added": 0, "reimaged": 0, "items": 0}
        changes = [c for c in changes if c.items != []]
        for change in changes:
            if change.items is not None:
                outcome["added" if change.sku not in current else "reimaged"] += 1
        new_ids = engine.catalog.products.apply(changes, engine.model_version)
        for change in changes:
            ids = new_ids.get(change.sku)
            if ids and change.items:
                engine.store.add(np.asarray(ids, np.int64), np.stack([vectors[i.path] for i in change.items]),
                                 [change.category] * len(ids))
                outcome["items"] += len(ids)
            if change.replaced:
                engine.store.remove(np.asarray(change.replaced, np.int64))
                old = current[change.sku].items
                self.images.forget([r.path for r in old], keep={i.path for i in change.items or []})
        return outcome

    def _acquire(self, urls: list[str]) -> list[_Image]:
        """Every image's bytes, kept by content: known URLs asked again conditionally, the rest downloaded."""
        known = self.engine.catalog.downloads.get(u for u in urls if u.startswith(("http://", "https://")))
        results = list(bounded_map(lambda u: self._one(u, known.get(u)), urls, self.fetcher.limits.concurrency,
                                   2 * self.fetcher.limits.concurrency))
        fresh = [record for _, record in results if record is not None]
        if fresh:
            self.engine.catalog.downloads.save(fresh)
        return [image for image, _ in results]

    def _one(self, url: str, known: DownloadRecord | None) -> tuple[_Image, DownloadRecord | None]:
        """An image, and the download record to save (None when unchanged)."""
        if not url.startswith(("http://", "https://")):
            return self._local(url), None
        stored = Path(known.path) if known else None
        fresh = stored is not None and self.images.has(stored)
        try:
            answer = self.fetcher.fetch(url, known.etag if fresh and known else None,
                                        known.last_modified if fresh and known else None)
        except FetchError as exc:
            return _Image(url, error=str(exc)), None
        if answer.data is None and known is not None and stored is not None:
            return _Image(url, known.content_hash, stored, how="not modified"), None
        data = answer.data or b""
        key = content_key(data)
        path = self.images.put(data, key, answer.image_format or "")
        return _Image(url, key, path, how="downloaded"), DownloadRecord(url, key, str(path), answer.etag,
                                                                        answer.last_modified)

    def _local(self, name: str) -> _Image:
        if not self._local_files:
            return _Image(name, error="not an http(s) URL")
        try:
            data = read_image_file(Path(name))
            key = content_key(data)
            return _Image(name, key, self.images.put(data, key, sniff_image(data)))
        except ImageDecodeError as exc:
            return _Image(name, error=str(exc))

"""Feed command: keep the catalog in step with a merchant's product feed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lookalike.cli.common import app, console, errors, fail, out, progress_bar
from lookalike.config import get_settings

if TYPE_CHECKING:
    from rich.progress import Progress

    from lookalike.sync import SyncReport


@app.command()
def sync(
    feed: Annotated[str, typer.Argument(help="The product feed: a file, or an http(s) URL.")],
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="COLUMN=FIELD: read a column as a field (sku, title, images, price, category, ...).")] = None,
    prune: Annotated[bool, typer.Option(help="Remove the products the feed no longer has.")] = False,
    force: Annotated[bool, typer.Option(help="Prune even when that removes more than 20% of the products.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write the counts and every failure as JSON here.")] = None,
) -> None:
    """Bring the catalog in step with a product feed, by SKU: add new products, re-embed the ones whose images
    changed, update the ones whose attributes changed (CSV, TSV, JSON Lines, Parquet; Google Merchant Center and
    Shopify columns recognised)."""
    from lookalike.bootstrap import feed_sync, open_current_engine
    from lookalike.data.feeds import parse_mapping
    from lookalike.sync import load_feed

    settings = get_settings()
    with errors():
        columns = parse_mapping(mapping or [])
        with open_current_engine(settings) as engine, feed_sync(settings, engine) as syncer:
            products = load_feed(feed, syncer.fetcher, columns)
            with progress_bar("syncing") as progress:
                result = syncer.run(products, prune=prune, force=force, progress=_tracker(progress))
            total_items, total_products = len(engine.store), engine.catalog.products.count()
    _print(result, total_items, total_products)
    if report:
        report.write_text(json.dumps({"counts": result.counts(), "failures": result.failures}, indent=2))
    if result.products and result.failed >= result.products and not (result.unchanged or result.updated):
        raise fail(f"nothing was synced: none of the feed's {result.products} products could be read")


def _tracker(progress: Progress):  # noqa: ANN202 - a closure for the sync's progress callback
    task = progress.tasks[-1].id
    started = progress.get_time()

    def update(done: int, total: int, report: SyncReport) -> None:
        elapsed = max(progress.get_time() - started, 1e-6)
        failed = len(report.failures)
        progress.update(task, completed=done, total=total,
                        rate=f"{report.downloaded / elapsed:,.0f} images/s, {failed} failed")

    return update


def _print(result: SyncReport, items: int, products: int) -> None:
    c = result.counts()
    out.print(f"synced {c['products']} products in {c['seconds']:.1f}s: {c['added']} added, {c['reimaged']} with new "
              f"images, {c['updated']} updated, {c['unchanged']} unchanged, {c['removed']} removed, {c['failed']} "
              f"failed; images {c['downloaded']} downloaded, {c['not_modified']} not modified, "
              f"{c['images_failed']} failed; catalog now {products} products, {items} items")
    for failure in result.failures[:20]:
        where = " ".join(str(failure[k]) for k in ("row", "sku", "url") if failure.get(k) is not None)
        out.print(f"  failed {where}: {failure['reason']}", markup=False)
    if len(result.failures) > 20:
        console.print(f"  ... and {len(result.failures) - 20} more (use --report FILE for all)")

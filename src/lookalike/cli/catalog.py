"""Catalog commands: import a dataset, ingest, search, duplicates, info."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from lookalike.cli.common import (
    app,
    console,
    errors,
    fail,
    hint_untrained,
    import_app,
    out,
    progress_bar,
    tracker,
)
from lookalike.config import get_settings

if TYPE_CHECKING:
    import numpy as np

    from lookalike.search import SearchService


# --- import -------------------------------------------------------------------------------------


@import_app.command("fashion-mnist")
def import_fashion_mnist_cmd(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to write images + manifest.csv.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder with the idx files.")] = None,
    download: Annotated[bool, typer.Option(help="Download the idx files if missing (needs a network).")] = False,
    verify: Annotated[bool, typer.Option(help="Check the files against the published Fashion-MNIST checksums.")] = True,
) -> None:
    """Write Fashion-MNIST's 70,000 images as PNGs plus a manifest (category, train/test split)."""
    from lookalike.data.fashion_mnist import find_data_dir, import_fashion_mnist

    settings = get_settings()
    target = out_dir or settings.datasets_dir / "fashion-mnist"
    with errors():
        source = find_data_dir(data_dir, settings.fashion_mnist_dir, download=download,
                               download_dir=settings.datasets_dir / "fashion-mnist-idx")
        with progress_bar("importing") as progress:
            manifest = import_fashion_mnist(target, source, progress=tracker(progress), verify=verify)
    out.print(f"wrote {manifest}")


# --- ingest -------------------------------------------------------------------------------------


@app.command()
def ingest(
    path: Annotated[Path | None, typer.Argument(help="Image folder (category = sub-folder) or manifest.")] = None,
    split: Annotated[str | None, typer.Option(help="Only the manifest rows of this split.")] = None,
    reindex: Annotated[bool, typer.Option(help="Rebuild the index from the catalog with the current model.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write the skipped files and reasons as JSON here.")] = None,
) -> None:
    """Add a catalog's new images (incremental and resumable), or rebuild the index with --reindex."""
    from lookalike.bootstrap import open_engine, open_rebuilt_engine
    from lookalike.data.sources import open_source
    from lookalike.ingest import ingest as run_ingest

    if path is None and not reindex:
        raise fail("give a PATH to ingest, or --reindex")
    settings = get_settings()
    with errors():
        entries = open_source(path, split=split) if path is not None else []
        if path is not None and not entries:
            raise fail(f"nothing to ingest: no images in {path}{f' (split {split!r})' if split else ''}")
        if reindex:
            with progress_bar("reindexing") as progress:
                engine, rebuilt = open_rebuilt_engine(settings, tracker(progress))
            out.print(f"reindexed {rebuilt.added} items with {engine.model_version}")
            for item_path, reason in rebuilt.unreadable:
                out.print(f"  skipped {item_path}: {reason}")
        else:
            engine = open_engine(settings)
        with engine:
            if entries:
                with progress_bar("ingesting") as progress:
                    result = run_ingest(engine, entries, tracker(progress))
                print_ingest(result, len(engine.store))
                if report:
                    report.write_text(json.dumps([{"path": p, "reason": r} for p, r in result.failures], indent=2))
                if result.failures and len(result.failures) == result.seen:
                    raise fail(f"nothing was ingested: none of the {result.seen} images could be read "
                                "(the reasons are listed above)")


def print_ingest(result, total: int) -> None:  # noqa: ANN001
    changed = "".join(f", {n} {what}" for n, what in ((result.replaced, "replaced (new image or category)"),
                                                     (result.updated, "updated (new item_id or metadata)")) if n)
    out.print(
        f"added {result.added} of {result.seen} images ({result.already_present} already in the catalog{changed}, "
        f"{len(result.failures)} skipped) in {result.seconds:.1f}s: {result.images_per_second:,.0f} images/s; "
        f"catalog now {total} items, index {result.index_type}"
    )
    for item_path, reason in result.failures[:20]:
        out.print(f"  skipped {item_path}: {reason}")
    if len(result.failures) > 20:
        out.print(f"  ... and {len(result.failures) - 20} more (use --report FILE for all)")


# --- search -------------------------------------------------------------------------------------


def _expand(paths: list[Path]) -> list[Path]:
    from lookalike.data.sources import iter_folder

    images: list[Path] = []
    for path in paths:
        images.extend(e.path for e in iter_folder(path)) if path.is_dir() else images.append(path)
    return images


@app.command()
def search(
    images: Annotated[list[Path], typer.Argument(help="Query images or folders of them.")],
    k: Annotated[int, typer.Option("-k", "--k", help="Results per query.")] = 5,
    category: Annotated[str | None, typer.Option(help="Only results of this category.")] = None,
    filter_json: Annotated[str | None, typer.Option("--filter", help='Only items meeting these conditions, JSON: '
                                                    '\'{"price": {"lte": 50}, "brand": ["A", "B"]}\'')] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per query line.")] = False,
    together: Annotated[bool, typer.Option("--together", help="One query from all the images: like all of them."
                                           )] = False,
) -> None:
    """Find the catalog items most similar to each query image (or, with --together, to all of them)."""
    from lookalike.bootstrap import open_engine
    from lookalike.errors import InvalidRequestError
    from lookalike.filters import AttributeIndex
    from lookalike.search import SearchService, check_category

    settings = get_settings()
    queries = _expand(images)
    if not queries:
        raise fail("no query images found")
    failed = 0
    with errors():
        engine = open_engine(settings)
        service = SearchService(engine, colour_weight=settings.colour_weight)
        try:
            try:
                category = check_category(engine.store, category)
                attributes = AttributeIndex(engine.catalog.attributes)
                parsed = attributes.parse(filter_json)
                allowed = attributes.matching(parsed) if parsed is not None else None
            except InvalidRequestError as exc:
                raise fail(str(exc), 2) from None  # bad input, like an unreadable query
            if together:
                vector, palette = service.example_query(list(queries))
                label = Path(f"{len(queries)} examples: " + ", ".join(q.name for q in queries))
                print_response(label, service.search_vectors(vector, k, category, palettes=palette,
                                                             allowed=allowed)[0], as_json)
            else:
                failed = _search_each(service, queries, k, category, as_json, settings.batch_size, allowed)
            hint_untrained(engine.head)
        finally:
            engine.catalog.close()
    if failed:
        raise typer.Exit(2)


def _search_each(service: SearchService, queries: list[Path], k: int, category: str | None, as_json: bool,
                 batch: int, allowed: np.ndarray | None) -> int:
    """Print the results of each query, a batch at a time; returns how many queries could not be read."""
    from lookalike.errors import ImageDecodeError

    failed = 0
    for start in range(0, len(queries), batch):
        chunk = queries[start : start + batch]
        try:
            responses = service.search_images(list(chunk), k, category, allowed)
        except ImageDecodeError:
            responses = [None] * len(chunk)  # type: ignore[list-item]  # find the bad ones one by one
            for i, query in enumerate(chunk):
                try:
                    responses[i] = service.search_images([query], k, category, allowed)[0]
                except ImageDecodeError as exc:
                    failed += 1
                    _print_failure(query, str(exc), as_json)
        for query, response in zip(chunk, responses, strict=True):
            if response is not None:
                print_response(query, response, as_json)
    return failed


def _print_failure(query: Path, reason: str, as_json: bool) -> None:
    if as_json:
        out.print(json.dumps({"query": str(query), "error": reason}), markup=False)
    else:
        console.print(f"[red]{query}: {reason}[/]")


def print_response(query: Path, response, as_json: bool) -> None:  # noqa: ANN001
    if as_json:
        line = {"query": str(query), "took_ms": round(response.took_ms, 2),
                "results": [{"id": h.id, "rank": h.rank, "score": h.score, "category": h.category,
                             "path": h.path, "item_id": h.item_id, "colour_match": h.colour_match}
                            | ({"sku": h.sku, "product": h.product} if h.sku else {}) for h in response.hits]}
        out.print(json.dumps(line), markup=False)
        return
    table = Table(title=f"{query}  ({response.took_ms:.1f} ms)", title_justify="left")
    for column in ("rank", "score", "category", "id", "path"):
        table.add_column(column)
    for h in response.hits:
        table.add_row(str(h.rank), f"{h.score:.4f}", h.category or "", str(h.id), h.path)
    out.print(table)


# --- duplicates ---------------------------------------------------------------------------------


@app.command()
def duplicates(
    threshold: Annotated[float | None, typer.Option(help="Cosine similarity (0-1]; default calibrated on the catalog.")
                         ] = None,
    fmt: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Groups of near-identical catalog items (re-uploads, resized or re-compressed copies), largest first."""
    import csv
    import io
    from dataclasses import asdict

    from lookalike.bootstrap import open_engine
    from lookalike.duplicates import find_duplicates, load_or_calibrate_threshold

    if fmt not in ("json", "csv"):
        raise fail("--format is json or csv")
    settings = get_settings()
    with errors():
        engine = open_engine(settings)
        try:
            calibration = load_or_calibrate_threshold(engine, settings.index_dir / "duplicates.json")
            chosen = calibration.threshold if threshold is None else threshold
            groups = find_duplicates(engine, chosen)
            records = engine.catalog.get_items(i for g in groups for i in g.ids)
        finally:
            engine.close()
    rows = [{"group": n, "id": i, "path": records[i].path, "category": records[i].category,
             "item_id": records[i].item_id, "group_size": len(g.ids), "min_score": g.min_score,
             "max_score": g.max_score} for n, g in enumerate(groups, 1) for i in g.ids if i in records]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["group", "id"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    else:
        text = json.dumps({"threshold": chosen, "calibration": asdict(calibration), "groups": [
            {"ids": g.ids, "min_score": g.min_score, "max_score": g.max_score,
             "items": [r for r in rows if r["id"] in g.ids]} for g in groups]}, indent=2)
    if output:
        output.write_text(text)
    else:
        out.print(text, markup=False, end="" if fmt == "csv" else "\n")
    console.print(f"{len(groups)} groups, {len(rows)} items at similarity >= {chosen:.4f} or matched pixel by pixel "
                  f"(calibrated default {calibration.threshold:.4f}"
                  f"{'' if calibration.separable else '; copies and different items overlap'}; "
                  f"{calibration.copies_found:.0%} of test copies found)")


# --- info ---------------------------------------------------------------------------------------


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Catalog size, model, index type and where the data lives."""
    from lookalike.bootstrap import open_engine

    settings = get_settings()
    with errors():
        engine = open_engine(settings)
        try:
            data = {
                "home": str(settings.home),
                "database": settings.resolved_database_url,
                "items": engine.catalog.count(),
                "products": engine.catalog.products.count(),
                "categories": {str(k): v for k, v in sorted(engine.catalog.category_counts().items(),
                                                            key=lambda kv: str(kv[0]))},
                "backbone": engine.extractor.fingerprint,
                "input_size": engine.extractor.preprocessing.input_size,
                "head": engine.head.version,
                "dim": engine.head.dim,
                "index": engine.store.describe(),
                "cached_features": len(engine.featurizer.cache) if engine.featurizer.cache else 0,
            }
        finally:
            engine.catalog.close()
    if as_json:
        out.print(json.dumps(data, indent=2), markup=False)
    else:
        for key, value in data.items():
            out.print(f"[bold]{key}[/]: {value}")
    hint_untrained(engine.head)

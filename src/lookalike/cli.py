"""The ``lookalike`` command line: import, ingest, train, search, info, demo.

Each command builds the same engine the API uses (see :mod:`lookalike.engine`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lookalike.config import Settings, get_settings
from lookalike.errors import LookalikeError
from lookalike.training import TRAINING_VIEWS

if TYPE_CHECKING:
    from lookalike.embedding.head import EmbeddingHead
    from lookalike.search import SearchService
    from lookalike.training.job import Method
    from lookalike.training.triplet import EpochStats

app = typer.Typer(help="Lookalike: visual search for fashion catalogs.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
import_app = typer.Typer(help="Import a public dataset as a catalog (images + manifest).", no_args_is_help=True)
app.add_typer(import_app, name="import")

console = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn Lookalike's typed errors into a one-line message and exit code 1 (no traceback)."""
    try:
        yield
    except LookalikeError as exc:
        raise _fail(str(exc)) from None


UNTRAINED_HEADS = {"identity": "no embedding head is trained yet", "pca": "the embedding head is unsupervised (PCA)"}


def _hint_untrained(head: EmbeddingHead) -> None:
    """One line on stderr when the active head was not trained on labelled images."""
    if head.kind in UNTRAINED_HEADS:
        console.print(f"[yellow]hint:[/] {UNTRAINED_HEADS[head.kind]}; `lookalike train PATH` learns one from a "
                      "labelled catalog, for closer matches")


@contextmanager
def _progress(description: str) -> Iterator[Progress]:
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress:
        progress.add_task(description, total=None, rate="")
        yield progress


def _tracker(progress: Progress):  # noqa: ANN202 - a small closure for the core's progress callbacks
    task = progress.tasks[-1].id
    started = progress.get_time()

    def update(done: int, total: int) -> None:
        elapsed = max(progress.get_time() - started, 1e-6)
        progress.update(task, completed=done, total=total, rate=f"{done / elapsed:,.0f} img/s")

    return update


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


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
    with _errors():
        source = find_data_dir(data_dir, settings.fashion_mnist_dir, download=download,
                               download_dir=settings.datasets_dir / "fashion-mnist-idx")
        with _progress("importing") as progress:
            manifest = import_fashion_mnist(target, source, progress=_tracker(progress), verify=verify)
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
        raise _fail("give a PATH to ingest, or --reindex")
    settings = get_settings()
    with _errors():
        entries = open_source(path, split=split) if path is not None else []
        if path is not None and not entries:
            raise _fail(f"nothing to ingest: no images in {path}{f' (split {split!r})' if split else ''}")
        if reindex:
            with _progress("reindexing") as progress:
                engine, rebuilt = open_rebuilt_engine(settings, _tracker(progress))
            out.print(f"reindexed {rebuilt.added} items with {engine.model_version}")
            for item_path, reason in rebuilt.unreadable:
                out.print(f"  skipped {item_path}: {reason}")
        else:
            engine = open_engine(settings)
        with engine:
            if entries:
                with _progress("ingesting") as progress:
                    result = run_ingest(engine, entries, _tracker(progress))
                _print_ingest(result, len(engine.store))
                if report:
                    report.write_text(json.dumps([{"path": p, "reason": r} for p, r in result.failures], indent=2))
                if result.failures and len(result.failures) == result.seen:
                    raise _fail(f"nothing was ingested: none of the {result.seen} images could be read "
                                "(the reasons are listed above)")


def _print_ingest(result, total: int) -> None:  # noqa: ANN001
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


# --- train --------------------------------------------------------------------------------------


@app.command()
def train(
    source: Annotated[Path, typer.Argument(help="Catalog folder or manifest to learn from.")],
    split: Annotated[str | None, typer.Option(help="Only the manifest rows of this split.")] = None,
    method: Annotated[str, typer.Option(help="triplet (trained, default) or pca (unsupervised).")] = "triplet",
    dim: Annotated[int, typer.Option(help="Embedding dimension.")] = 128,
    miner: Annotated[str, typer.Option(help="Hard-negative mining: semihard, hard or batch-hard.")] = "",
    margin: Annotated[float | None, typer.Option(help="Triplet margin.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Most epochs (early stopping may end sooner).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
    augment: Annotated[int, typer.Option(help="Photo-like training views added as positives.")] = TRAINING_VIEWS,
    fine_tune_blocks: Annotated[int, typer.Option(
        help="Also train the backbone's last N blocks (multi-scale EfficientNet-Lite backbones). Slow on a CPU; "
             "the catalog is embedded again afterwards.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its checkpoint.")] = True,
    reindex_after: Annotated[bool, typer.Option("--reindex/--no-reindex",
                                                help="Rebuild the index with the new head.")] = True,
) -> None:
    """Train the embedding head on a catalog's (cached) backbone features and make it the active head.

    Positives share an item_id when every item has one, else a category.
    """
    from lookalike.data.sources import open_source
    from lookalike.training.job import train_active_head
    from lookalike.training.triplet import TrainConfig

    if method not in ("triplet", "pca"):
        raise _fail("--method is triplet or pca")
    config = TrainConfig(dim=dim, seed=seed, device=device, fine_tune_blocks=fine_tune_blocks)
    if fine_tune_blocks and method != "triplet":
        raise _fail("--fine-tune-blocks needs --method triplet")
    if miner:
        if miner not in ("semihard", "hard", "batch-hard"):
            raise _fail("--miner is semihard, hard or batch-hard")
        config.miner = miner  # type: ignore[assignment]
    if margin is not None:
        config.margin = margin
    if epochs is not None:
        config.max_epochs = epochs
    settings = get_settings()
    with _errors():
        train_active_head(settings, open_source(source, split=split), cast("Method", method), config, _Reporter(),
                          reindex=reindex_after, resume=resume, augment=augment)


class _Reporter:
    """A training job's progress on the console: a bar per stage, a line per epoch."""

    def __init__(self) -> None:
        self._progress: Progress | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[Callable[[int, int], None]]:
        with _progress(name) as progress:
            self._progress = progress
            try:
                yield _tracker(progress)
            finally:
                self._progress = None

    def epoch(self, stats: EpochStats, max_epochs: int) -> None:
        figures = (f"loss {stats.loss:.4f}  val precision@1 {stats.val_precision_at_1:.4f}  "
                   f"instance recall@10 {stats.val_instance_recall_at_10:.4f}")
        if self._progress is not None:
            self._progress.update(self._progress.tasks[-1].id, completed=stats.epoch, total=max_epochs, rate=figures)
        if not console.is_terminal:
            console.print(f"epoch {stats.epoch}: {figures} ({stats.seconds:.1f}s)")

    def say(self, text: str) -> None:
        out.print(text)


# --- evaluate -----------------------------------------------------------------------------------


@app.command()
def evaluate(
    queries: Annotated[Path | None, typer.Option(help="Query catalog (folder or manifest).")] = None,
    gallery: Annotated[Path | None, typer.Option(help="Gallery catalog; default the query manifest.")] = None,
    query_split: Annotated[str | None, typer.Option(
        help='Split of the query manifest (default test; "" or no split column: all rows).')] = None,
    gallery_split: Annotated[str | None, typer.Option(
        help='Split of the gallery manifest (default train; "" or no split column: all rows).')] = None,
    baselines: Annotated[bool, typer.Option(help="Also measure raw pixels and the frozen backbone.")] = False,
    photo_like: Annotated[int, typer.Option(help="Also query with N photo-like renderings of the queries.")] = 0,
    limit: Annotated[int | None, typer.Option(help="Use only the first N queries (seeded sample).")] = None,
    exact_items: Annotated[int, typer.Option(
        help="Also re-photograph N gallery items (mild and strong) and measure how often the very item is found.")] = 0,
) -> None:
    """Retrieval accuracy of the active model: queries against a gallery (default Fashion-MNIST test vs train).

    Writes report.json, report.md and PNG plots to HOME/reports/<time>/ (the dashboard shows the latest).
    """
    settings = get_settings()
    query_source = queries or settings.datasets_dir / "fashion-mnist" / "manifest.csv"
    with _errors():
        if not query_source.exists():
            raise _fail(f"{query_source} not found: run `lookalike import fashion-mnist` or give --queries")
        _evaluate(settings, query_source, gallery or query_source, query_split, gallery_split, baselines, photo_like,
                  limit, exact_items)


def _evaluate(settings: Settings, query_source: Path, gallery_source: Path, query_split: str | None,
              gallery_split: str | None, baselines: bool, photo_like: int, limit: int | None,
              exact_items: int = 0) -> None:
    from lookalike.evaluation.job import evaluate_active_model
    from lookalike.evaluation.report import EXACT_HEADLINE, HEADLINE

    query_split = _split(query_source, query_split, "test", "--query-split", "queries")
    gallery_split = _split(gallery_source, gallery_split, "train", "--gallery-split", "gallery")
    if query_source.resolve() == gallery_source.resolve() and query_split == gallery_split:
        raise _fail(f"the queries and the gallery are the same rows of {query_source}: every query would find "
                    "itself; give another --gallery, or a manifest with a split column", 2)
    with _progress("evaluating") as progress:
        task = progress.tasks[-1].id

        def track(stage: str, done: int, total: int) -> None:
            progress.update(task, description=stage, completed=done, total=total)

        report = evaluate_active_model(settings, query_source, gallery_source, query_split, gallery_split, track,
                                       baselines=baselines, photo_like=photo_like, limit=limit,
                                       exact_items=exact_items)
    rows, models = report.evaluation.rows, report.models
    for query_set in report.query_sets:  # a table per query set, a column per model
        table = Table(title=f"retrieval accuracy: {query_set} queries", title_justify="left")
        table.add_column("metric", no_wrap=True)
        for model in models:
            table.add_column(model, justify="right", no_wrap=True)
        found = [rows[f"{model} / {query_set}"] for model in models]
        table.add_row("queries", *(str(m.queries) for m in found))
        for h in HEADLINE:
            table.add_row(h, *(f"{m.overall[h]:.4f}" for m in found))
        out.print(table)
    for style in report.exact_styles:
        table = Table(title=f"exact item: {style} re-photographed catalog items", title_justify="left")
        table.add_column("metric", no_wrap=True)
        for model in models:
            table.add_column(model, justify="right", no_wrap=True)
        figures = [report.evaluation.exact[f"{model} / {style}"] for model in models]
        for h in ("queries", *EXACT_HEADLINE):
            table.add_row(h, *(f"{f[h]:.4f}" if h not in ("queries", "median rank") else f"{f[h]:g}" for f in figures))
        out.print(table)
    out.print(f"report: {report.folder / 'report.md'}")


def _split(source: Path, asked: str | None, default: str, option: str, role: str) -> str | None:
    """The split of a manifest to use: the one asked for ("" for all rows), else ``default``; all rows, said in one
    line, when the manifest has no split column and none was asked for. Folders have no splits."""
    from lookalike.data.sources import has_split_column

    if asked == "" or not source.is_file():
        return None
    if has_split_column(source):
        return asked or default
    if asked is not None:
        raise _fail(f'{source} has no split column; {option} "" uses all its rows', 2)
    console.print(f"{source} has no split column: using all its rows as the {role}")
    return None


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
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per query line.")] = False,
    together: Annotated[bool, typer.Option("--together", help="One query from all the images: like all of them."
                                           )] = False,
) -> None:
    """Find the catalog items most similar to each query image (or, with --together, to all of them)."""
    from lookalike.bootstrap import open_engine
    from lookalike.errors import InvalidRequestError
    from lookalike.search import SearchService, check_category

    settings = get_settings()
    queries = _expand(images)
    if not queries:
        raise _fail("no query images found")
    failed = 0
    with _errors():
        engine = open_engine(settings)
        service = SearchService(engine, colour_weight=settings.colour_weight)
        try:
            try:
                category = check_category(engine, category)
            except InvalidRequestError as exc:
                raise _fail(str(exc), 2) from None  # bad input, like an unreadable query
            if together:
                vector = service.example_vector(list(queries))
                label = Path(f"{len(queries)} examples: " + ", ".join(q.name for q in queries))
                palette = service.example_palette(list(queries))
                _print_response(label, service.search_vectors(vector, k, category, palettes=palette)[0], as_json)
            else:
                failed = _search_each(service, queries, k, category, as_json, settings.batch_size)
            _hint_untrained(engine.head)
        finally:
            engine.catalog.close()
    if failed:
        raise typer.Exit(2)


def _search_each(service: SearchService, queries: list[Path], k: int, category: str | None, as_json: bool,
                 batch: int) -> int:
    """Print the results of each query, a batch at a time; returns how many queries could not be read."""
    from lookalike.errors import ImageDecodeError

    failed = 0
    for start in range(0, len(queries), batch):
        chunk = queries[start : start + batch]
        try:
            responses = service.search_images(list(chunk), k, category)
        except ImageDecodeError:
            responses = [None] * len(chunk)  # type: ignore[list-item]  # find the bad ones one by one
            for i, query in enumerate(chunk):
                try:
                    responses[i] = service.search_images([query], k, category)[0]
                except ImageDecodeError as exc:
                    failed += 1
                    _print_failure(query, str(exc), as_json)
        for query, response in zip(chunk, responses, strict=True):
            if response is not None:
                _print_response(query, response, as_json)
    return failed


def _print_failure(query: Path, reason: str, as_json: bool) -> None:
    if as_json:
        out.print(json.dumps({"query": str(query), "error": reason}), markup=False)
    else:
        console.print(f"[red]{query}: {reason}[/]")


def _print_response(query: Path, response, as_json: bool) -> None:  # noqa: ANN001
    if as_json:
        line = {"query": str(query), "took_ms": round(response.took_ms, 2),
                "results": [{"id": h.id, "rank": h.rank, "score": h.score, "category": h.category,
                             "path": h.path, "item_id": h.item_id, "colour_match": h.colour_match}
                            for h in response.hits]}
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
        raise _fail("--format is json or csv")
    settings = get_settings()
    with _errors():
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
    console.print(f"{len(groups)} groups, {len(rows)} items at similarity >= {chosen:.4f} "
                  f"(calibrated default {calibration.threshold:.4f}"
                  f"{'' if calibration.separable else '; copies and different items overlap'})")


# --- info ---------------------------------------------------------------------------------------


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Catalog size, model, index type and where the data lives."""
    from lookalike.bootstrap import open_engine

    settings = get_settings()
    with _errors():
        engine = open_engine(settings)
        try:
            data = {
                "home": str(settings.home),
                "database": settings.resolved_database_url,
                "items": engine.catalog.count(),
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
    _hint_untrained(engine.head)


# --- serve --------------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default LOOKALIKE_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default LOOKALIKE_PORT, 8000).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Server processes (default LOOKALIKE_WORKERS, "
                                                "1); one per core gets the most queries per second.")] = None,
) -> None:
    """Serve the REST API and the dashboard."""
    settings = get_settings()
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    _serve(settings, host or settings.host, port or settings.port)


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from lookalike.api.main import create_app
    from lookalike.api.state import AppState
    from lookalike.bootstrap import milvus_config, open_engine

    if settings.workers > 1 and settings.vector_store == "milvus" and milvus_config(settings).is_lite:
        raise _fail("several workers cannot share a Milvus Lite file; use a Milvus server "
                    "(LOOKALIKE_MILVUS_URI=http://...) or the FAISS store", 2)
    with _errors():
        engine = open_engine(settings)  # a corrupt index is reported here, not traced
        _hint_untrained(engine.head)
        banner = f"Lookalike dashboard: http://{host}:{port}  (API docs: http://{host}:{port}/docs)"
        if settings.workers == 1:
            application = create_app(settings, engine)
            out.print(banner)
            uvicorn.run(application, host=host, port=port, log_level="warning")
            return
        AppState.open(settings, engine).close()  # reconciled and calibrated once, before the workers start
    from lookalike.api.workers import run_workers

    os.environ["LOOKALIKE_WORKERS"] = str(settings.workers)
    out.print(f"{banner}, {settings.workers} workers")
    try:
        status = run_workers(host, port, settings.workers)
    except OSError as exc:
        raise _fail(f"cannot listen on {host}:{port}: {exc}", 2) from exc
    if status:
        raise typer.Exit(status)


# --- demo ---------------------------------------------------------------------------------------


@app.command()
def demo(
    queries: Annotated[int, typer.Option(help="Test images to search for the accuracy summary.")] = 1000,
    examples: Annotated[int, typer.Option(help="Example result lists to print.")] = 3,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the dashboard afterwards.")] = True,
) -> None:
    """The main job on Fashion-MNIST: import, train the head (or reuse it), ingest the 60,000 training images,
    evaluate, search, then serve the dashboard at http://127.0.0.1:8000. A second run reuses everything."""
    import random

    from lookalike.bootstrap import head_path, load_extractor, open_current_engine
    from lookalike.data.fashion_mnist import find_data_dir, import_fashion_mnist
    from lookalike.data.sources import open_source
    from lookalike.evaluation.report import latest_report
    from lookalike.ingest import ingest as run_ingest
    from lookalike.search import SearchService
    from lookalike.training.job import train_active_head
    from lookalike.training.triplet import TrainConfig

    settings = get_settings()
    with _errors():
        manifest = settings.datasets_dir / "fashion-mnist" / "manifest.csv"
        if not manifest.is_file():
            source = find_data_dir(None, settings.fashion_mnist_dir, download=True,
                                   download_dir=settings.datasets_dir / "fashion-mnist-idx")
            with _progress("importing Fashion-MNIST") as progress:
                import_fashion_mnist(manifest.parent, source, progress=_tracker(progress))
        gallery = open_source(manifest, split="train")
        extractor = load_extractor(settings)
        if not head_path(settings.heads_dir, extractor.name).is_file():
            train_active_head(settings, gallery, "triplet", TrainConfig(), _Reporter(), reindex=False,
                              augment=TRAINING_VIEWS)
        with _progress("reindexing") as progress:
            engine = open_current_engine(settings, _tracker(progress))
        with engine:
            with _progress("ingesting") as progress:
                result = run_ingest(engine, gallery, _tracker(progress))
            _print_ingest(result, len(engine.store))
            tests = open_source(manifest, split="test")
            sample = random.Random(0).sample(tests, min(queries, len(tests)))
            service = SearchService(engine)
            correct = 0
            for start in range(0, len(sample), settings.batch_size):
                chunk = sample[start : start + settings.batch_size]
                responses = service.search_images([e.path for e in chunk], k=5)
                correct += sum(r.hits[0].category == e.category for e, r in zip(chunk, responses, strict=True))
                if start == 0:
                    for entry, response in list(zip(chunk, responses, strict=True))[:examples]:
                        out.print(f"query {entry.path.name} ({entry.category})")
                        _print_response(entry.path, response, as_json=False)
            out.print(f"category precision@1 over {len(sample)} test queries: {correct / len(sample):.4f}")
            model = engine.model_version
        report = latest_report(settings.home / "reports")
        if report is None or json.loads((report / "report.json").read_text())["meta"]["model"] != model:
            _evaluate(settings, manifest, manifest, "test", "train", baselines=True, photo_like=1000, limit=None,
                      exact_items=1000)
    if serve_after:
        _serve(settings, settings.host, settings.port)


if __name__ == "__main__":  # pragma: no cover
    app()

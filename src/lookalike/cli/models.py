"""Model commands: train the embedding head, evaluate the active model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.progress import Progress
from rich.table import Table

from lookalike.cli.common import (
    app,
    console,
    errors,
    fail,
    out,
    progress_bar,
    tracker,
)
from lookalike.config import Settings, get_settings
from lookalike.training import TRAINING_VIEWS

if TYPE_CHECKING:
    from lookalike.training.job import Method
    from lookalike.training.triplet import EpochStats


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
    weight_bits: Annotated[int, typer.Option(
        help="8: the head's large first layer runs with 8-bit weights (a third of its CPU, the same accuracy: "
             "BENCHMARKS.md); 32: all float32.")] = 8,
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
        raise fail("--method is triplet or pca")
    if weight_bits not in (8, 32):
        raise fail("--weight-bits is 8 or 32")
    config = TrainConfig(dim=dim, seed=seed, device=device, fine_tune_blocks=fine_tune_blocks, weight_bits=weight_bits)
    if fine_tune_blocks and method != "triplet":
        raise fail("--fine-tune-blocks needs --method triplet")
    if miner:
        if miner not in ("semihard", "hard", "batch-hard"):
            raise fail("--miner is semihard, hard or batch-hard")
        config.miner = miner  # type: ignore[assignment]
    if margin is not None:
        config.margin = margin
    if epochs is not None:
        config.max_epochs = epochs
    settings = get_settings()
    with errors():
        train_active_head(settings, open_source(source, split=split), cast("Method", method), config, Reporter(),
                          reindex=reindex_after, resume=resume, augment=augment)


class Reporter:
    """A training job's progress on the console: a bar per stage, a line per epoch."""

    def __init__(self) -> None:
        self._progress: Progress | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[Callable[[int, int], None]]:
        with progress_bar(name) as progress:
            self._progress = progress
            try:
                yield tracker(progress)
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
        help="Also re-photograph N gallery items (mild, strong, studio): how often the very item is found.")] = 0,
) -> None:
    """Retrieval accuracy of the active model: queries against a gallery (default Fashion-MNIST test vs train).

    Writes report.json, report.md and PNG plots to HOME/reports/<time>/ (the dashboard shows the latest).
    """
    settings = get_settings()
    query_source = queries or settings.datasets_dir / "fashion-mnist" / "manifest.csv"
    with errors():
        if not query_source.exists():
            raise fail(f"{query_source} not found: run `lookalike import fashion-mnist` or give --queries")
        run_evaluation(settings, query_source, gallery or query_source, query_split, gallery_split, baselines,
                       photo_like, limit, exact_items)


def run_evaluation(settings: Settings, query_source: Path, gallery_source: Path, query_split: str | None,
              gallery_split: str | None, baselines: bool, photo_like: int, limit: int | None,
              exact_items: int = 0) -> None:
    from lookalike.evaluation.job import evaluate_active_model
    from lookalike.evaluation.report import EXACT_HEADLINE, HEADLINE

    query_split = _split(query_source, query_split, "test", "--query-split", "queries")
    gallery_split = _split(gallery_source, gallery_split, "train", "--gallery-split", "gallery")
    if query_source.resolve() == gallery_source.resolve() and query_split == gallery_split:
        raise fail(f"the queries and the gallery are the same rows of {query_source}: every query would find "
                    "itself; give another --gallery, or a manifest with a split column", 2)
    with progress_bar("evaluating") as progress:
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
        raise fail(f'{source} has no split column; {option} "" uses all its rows', 2)
    console.print(f"{source} has no split column: using all its rows as the {role}")
    return None

"""What every command shares: the Typer app, the consoles, one-line errors, progress bars."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lookalike.errors import LookalikeError

if TYPE_CHECKING:
    from lookalike.embedding.head import EmbeddingHead

app = typer.Typer(help="Lookalike: visual search for fashion catalogs.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
import_app = typer.Typer(help="Import a public dataset as a catalog (images + manifest).", no_args_is_help=True)
app.add_typer(import_app, name="import")

console = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Turn Lookalike's typed errors into a one-line message and exit code 1 (no traceback)."""
    try:
        yield
    except LookalikeError as exc:
        raise fail(str(exc)) from None


UNTRAINED_HEADS = {"identity": "no embedding head is trained yet", "pca": "the embedding head is unsupervised (PCA)"}


def hint_untrained(head: EmbeddingHead) -> None:
    """One line on stderr when the active head was not trained on labelled images."""
    if head.kind in UNTRAINED_HEADS:
        console.print(f"[yellow]hint:[/] {UNTRAINED_HEADS[head.kind]}; `lookalike train PATH` learns one from a "
                      "labelled catalog, for closer matches")


@contextmanager
def progress_bar(description: str) -> Iterator[Progress]:
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress:
        progress.add_task(description, total=None, rate="")
        yield progress


def tracker(progress: Progress):  # noqa: ANN202 - a small closure for the core's progress callbacks
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

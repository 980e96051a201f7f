"""Serving commands: the API and dashboard, and the demo (the main job on Fashion-MNIST)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated

import typer

from lookalike.cli.common import (
    app,
    errors,
    fail,
    hint_untrained,
    out,
    progress_bar,
    tracker,
)
from lookalike.config import Settings, get_settings
from lookalike.training import TRAINING_VIEWS

if TYPE_CHECKING:
    pass
from lookalike.cli.catalog import print_ingest, print_response
from lookalike.cli.models import Reporter, run_evaluation

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
    run_server(settings, host or settings.host, port or settings.port)


def run_server(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from lookalike.allocator import return_large_blocks
    from lookalike.api.main import create_app
    from lookalike.api.state import AppState
    from lookalike.api.telemetry import configure_logging
    from lookalike.bootstrap import milvus_config, open_engine

    if settings.workers > 1 and settings.vector_store == "milvus" and milvus_config(settings).is_lite:
        raise fail("several workers cannot share a Milvus Lite file; use a Milvus server "
                    "(LOOKALIKE_MILVUS_URI=http://...) or the FAISS store", 2)
    return_large_blocks()  # a server reloads its index after every change: see lookalike.allocator
    with errors():
        engine = open_engine(settings)  # a corrupt index is reported here, not traced
        hint_untrained(engine.head)
        banner = f"Lookalike dashboard: http://{host}:{port}  (API docs: http://{host}:{port}/docs)"
        if settings.workers == 1:
            application = create_app(settings, engine)
            out.print(banner)
            configure_logging(settings.log_format)  # uvicorn's loggers too: log_config=None leaves them to it
            uvicorn.run(application, host=host, port=port, log_level="warning", log_config=None, access_log=False)
            return
        AppState.open(settings, engine).close()  # reconciled and calibrated once, before the workers start
    from lookalike.api.workers import run_workers

    os.environ["LOOKALIKE_WORKERS"] = str(settings.workers)
    out.print(f"{banner}, {settings.workers} workers")
    try:
        status = run_workers(host, port, settings.workers)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc}", 2) from exc
    if status:
        raise typer.Exit(status)


# --- demo ---------------------------------------------------------------------------------------


@app.command()
def demo(
    queries: Annotated[int, typer.Option(help="Test images to search for the accuracy summary.")] = 1000,
    examples: Annotated[int, typer.Option(help="Example result lists to print.")] = 3,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the dashboard afterwards.")] = True,
) -> None:
    """The main job on Fashion-MNIST: import, train the head (or reuse it, if made for this backbone), ingest the
    60,000 training images, evaluate, search, then serve the dashboard at http://127.0.0.1:8000. A second run reuses
    everything."""
    import random

    from lookalike.bootstrap import head_path, load_extractor, open_current_engine
    from lookalike.data.fashion_mnist import find_data_dir, import_fashion_mnist
    from lookalike.data.sources import open_source
    from lookalike.embedding.head import EmbeddingHead
    from lookalike.evaluation.report import latest_report
    from lookalike.ingest import ingest as run_ingest
    from lookalike.search import SearchService
    from lookalike.training.job import train_active_head
    from lookalike.training.triplet import TrainConfig

    settings = get_settings()
    with errors():
        manifest = settings.datasets_dir / "fashion-mnist" / "manifest.csv"
        if not manifest.is_file():
            source = find_data_dir(None, settings.fashion_mnist_dir, download=True,
                                   download_dir=settings.datasets_dir / "fashion-mnist-idx")
            with progress_bar("importing Fashion-MNIST") as progress:
                import_fashion_mnist(manifest.parent, source, progress=tracker(progress))
        gallery = open_source(manifest, split="train")
        extractor = load_extractor(settings)
        head = head_path(settings.heads_dir, extractor.name)
        if not head.is_file() or EmbeddingHead.read_meta(head)["backbone"] != extractor.fingerprint:  # another model's
            train_active_head(settings, gallery, "triplet", TrainConfig(), Reporter(), reindex=False,
                              augment=TRAINING_VIEWS)
        with progress_bar("reindexing") as progress:
            engine = open_current_engine(settings, tracker(progress))
        with engine:
            with progress_bar("ingesting") as progress:
                result = run_ingest(engine, gallery, tracker(progress))
            print_ingest(result, len(engine.store))
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
                        print_response(entry.path, response, as_json=False)
            out.print(f"category precision@1 over {len(sample)} test queries: {correct / len(sample):.4f}")
            model = engine.model_version
        report = latest_report(settings.home / "reports")
        if report is None or json.loads((report / "report.json").read_text())["meta"]["model"] != model:
            run_evaluation(settings, manifest, manifest, "test", "train", baselines=True, photo_like=1000, limit=None,
                      exact_items=1000)
    if serve_after:
        run_server(settings, settings.host, settings.port)



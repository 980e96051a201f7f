"""The least a search server can cost on this machine: the same HTTP server as `lookalike serve` (uvicorn with
httptools and uvloop, FastAPI, the handler on a thread of its pool), whose one route decodes the uploaded JPEG to the
model's input, runs the model (backbone + head, batched with concurrent requests' as the server does) and answers five
values of the embedding. No catalog, index, colours, history, metrics or middleware.

    python benchmarks/floor_server.py --home ~/.lookalike --port 8123 [--workers 2]

Benchmarks start it like a server (``common.server_process(..., program=FLOOR)``) and send it the very requests
they send `lookalike serve`, multipart or raw image bodies: what it costs is the floor under any search server that
decodes the upload and runs this model over HTTP here.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from lookalike.api.state import one_thread_embedding
from lookalike.batching import MicroBatcher
from lookalike.bootstrap import open_engine
from lookalike.config import Settings


def create_floor_app() -> FastAPI:
    """The floor app over the home of ``LOOKALIKE_HOME``."""
    settings = Settings()
    engine = open_engine(settings)
    # as the server: concurrent requests share backbone passes, at most cores / workers at once
    embed = MicroBatcher.of(one_thread_embedding(engine), settings.batch_size,
                            max(1, (os.cpu_count() or 1) // settings.workers))
    prepare = engine.featurizer.prepare
    app = FastAPI()

    @app.get("/api/health")
    def health() -> dict[str, object]:
        return {"status": "ok", "worker": os.getpid()}

    @app.post("/api/search")
    async def search(request: Request) -> Response:
        started = time.perf_counter()
        if request.headers.get("content-type", "").startswith("multipart/"):
            async with request.form() as form:
                upload = form["file"]
                image = await upload.read()  # type: ignore[union-attr]
        else:
            image = await request.body()

        def answer() -> bytes:
            vector = embed(prepare(image)[None])[0]
            took_ms = (time.perf_counter() - started) * 1000
            return b'{"took_ms": %.3f, "results": [%s]}' % (took_ms, ", ".join(f"{v:.6f}" for v in vector[:5]).encode())

        return Response(await run_in_threadpool(answer), media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="an ingested home (default: LOOKALIKE_HOME)")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: LOOKALIKE_WORKERS, 1)")
    args = parser.parse_args()
    if args.home:
        os.environ["LOOKALIKE_HOME"] = str(args.home)
    workers = args.workers or Settings().workers
    uvicorn.run("floor_server:create_floor_app", factory=True, host="127.0.0.1", port=args.port, workers=workers,
                log_level="warning", access_log=False, app_dir=str(Path(__file__).parent))


if __name__ == "__main__":
    main()

"""The ``lookalike`` command line: import, ingest, train, evaluate, search, duplicates, info, serve, demo.

Thin commands over the core: each builds the same engine the API uses (:mod:`lookalike.bootstrap`), calls a job or
a service, and prints. ``common`` holds the app and what every command shares; the commands live by subject.
"""

from lookalike.cli import catalog, feeds, models, operations, serving  # noqa: F401  (each registers its commands on the app)
from lookalike.cli.common import app

__all__ = ["app"]

"""Backup and restore of a home: a consistent snapshot while the server runs, and a restore into an empty home.

A backup holds the catalog database (SQLite's online-backup API, or ``pg_dump`` for PostgreSQL: searches, history
and tastes included), the FAISS index's current generation with its calibrations, the heads and the exported
models, and, when asked, the feature cache and the images downloaded from feeds, with a manifest of every file's
size and SHA-256. It is written into a hidden folder beside ``DEST`` and renamed into place when complete, so a
backup killed half-way never replaces or damages the previous one.

Catalog changes wait while the database and the index are copied (the server's write lock), so the two match;
searches go on. With Milvus the vectors stay in Milvus: the restore re-embeds the catalog into the collection it
is configured with (from the feature cache when the backup has it, else from the images), or Milvus's own backup
tool (milvus-backup) can copy the collection.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from lookalike import __version__
from lookalike.config import Settings
from lookalike.embedding.feature_cache import copy_cache
from lookalike.errors import LookalikeError
from lookalike.hashing import file_sha256
from lookalike.index.snapshot import CURRENT, read_current
from lookalike.io.files import forget_leftovers, fsync
from lookalike.locking import WriteLock

MANIFEST = "manifest.json"
FORMAT = 1
SQLITE_FILE = "catalog.db"
PG_DUMP_FILE = "catalog.pgdump"


class BackupError(LookalikeError):
    """A backup or a restore that cannot be made, or a backup that is incomplete or damaged."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    files: int
    bytes: int
    seconds: float
    database: str  # sqlite or postgresql
    vector_store: str


def backup(settings: Settings, dest: Path, *, features: bool = False, images: bool = False,
           replace: bool = False) -> BackupReport:
    """Write a backup of ``settings.home`` to ``dest`` (see the module docstring); ``replace`` an existing one only
    once the new one is complete."""
    started = time.perf_counter()
    dest = dest.resolve()
    if dest.exists() and not replace:
        raise BackupError(f"{dest} exists: choose another place, or --replace it (only once the new backup is whole)")
    _forget_partials(dest)
    partial = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    partial.mkdir(parents=True)
    try:
        url = settings.resolved_database_url
        with WriteLock(settings.home / "write.lock"):  # catalog changes wait; searches go on
            if settings.vector_store == "faiss":
                _copy_index(settings.index_dir, partial / "index")
            database = _dump_database(url, partial)
        for name, source in (("heads", settings.heads_dir), ("models", settings.resolved_models_dir),
                             *((("images", settings.images_dir),) if images else ())):
            if source.is_dir():
                shutil.copytree(source, partial / name, ignore=shutil.ignore_patterns("*.tmp", ".*"))
        if features and settings.features_dir.is_dir():
            copy_cache(settings.features_dir, partial / "features")
        files = _checksums(partial)
        manifest = {"format": FORMAT, "lookalike": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "database": database, "vector_store": settings.vector_store,
                    "parts": sorted({path.split("/")[0] for path in files}), "files": files}
        _write_synced(partial / MANIFEST, json.dumps(manifest, indent=2).encode())
        _sync_tree(partial)
        _put_in_place(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BackupReport(dest, len(files), sum(f["bytes"] for f in files.values()),
                        time.perf_counter() - started, database, settings.vector_store)


def verify(source: Path) -> dict[str, Any]:
    """The manifest of the backup at ``source``, after checking every file's size and SHA-256; BackupError names the
    missing or damaged ones."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a complete backup: no readable {MANIFEST} ({exc})") from None
    bad = []
    for name, expected in manifest.get("files", {}).items():
        path = source / name
        if not path.is_file() or path.stat().st_size != expected["bytes"] or file_sha256(path) != expected["sha256"]:
            bad.append(name)
    if bad:
        raise BackupError(f"the backup at {source} is damaged: {', '.join(sorted(bad)[:10])} missing or altered")
    return dict(manifest)


def restore(settings: Settings, source: Path) -> dict[str, Any]:
    """Restore the backup at ``source`` into ``settings.home``, which must be empty (and so must a PostgreSQL
    database); returns its manifest. The index is opened (and with Milvus rebuilt) by the next command."""
    source = source.resolve()
    manifest = verify(source)
    home = settings.home
    if home.exists() and any(home.iterdir()):
        raise BackupError(f"{home} is not empty: restore into an empty home (LOOKALIKE_HOME)")
    url = settings.resolved_database_url
    backend = make_url(url).get_backend_name()
    if backend != manifest["database"]:
        raise BackupError(f"the backup holds a {manifest['database']} database, but the catalog database configured "
                          f"is {backend} ({make_url(url).render_as_string(hide_password=True)})")
    home.mkdir(parents=True, exist_ok=True)
    targets = {"index": settings.index_dir, "heads": settings.heads_dir, "models": settings.resolved_models_dir,
               "features": settings.features_dir, "images": settings.images_dir}
    for part in manifest["parts"]:
        if part in targets:
            shutil.copytree(source / part, targets[part], dirs_exist_ok=True)
    if backend == "sqlite":
        database = Path(make_url(url).database or "")
        database.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / SQLITE_FILE, database)
    else:
        _pg_restore(url, source / PG_DUMP_FILE)
    return manifest


def _copy_index(index_dir: Path, target: Path) -> None:
    """The current generation, its pointer and the calibrations beside it; checked against the generation's own
    manifest (another process may save a new one meanwhile: then copied again)."""
    for _ in range(5):
        current = read_current(index_dir)
        if current is None:
            return
        folder, _ = current
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        try:
            shutil.copytree(folder, target / folder.name)
            shutil.copyfile(index_dir / CURRENT, target / CURRENT)
            read_current(target)  # the copy is whole and is what the pointer names
        except (OSError, LookalikeError):
            continue
        for calibration in index_dir.glob("*.json"):
            shutil.copyfile(calibration, target / calibration.name)
        return
    raise BackupError(f"the index in {index_dir} kept changing while it was copied; try again")


def _dump_database(url: str, target: Path) -> str:
    """A consistent copy of the catalog database into ``target``; returns its backend name."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        source, copy = sqlite3.connect(parsed.database or ""), sqlite3.connect(target / SQLITE_FILE)
        try:
            source.backup(copy)  # one read transaction: a snapshot, while writers go on (WAL)
        finally:
            copy.close()
            source.close()
    elif backend == "postgresql":
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={target / PG_DUMP_FILE}", _libpq(url)],
             "pg_dump")
    else:
        raise BackupError(f"backups of a {backend} catalog database are not supported: use its own tools")
    return backend


def _pg_restore(url: str, dump: Path) -> None:
    engine = create_engine(url)
    try:
        if inspect(engine).get_table_names():
            raise BackupError("the PostgreSQL database to restore into has tables: give an empty one")
    finally:
        engine.dispose()
    _run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_libpq(url)}", str(dump)], "pg_restore")


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as a libpq connection URI (no driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(command: list[str], tool: str) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(f"{tool} is not installed: it is needed for a PostgreSQL catalog (apt-get install "
                          "postgresql-client)")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed: {done.stderr.strip()[-500:]}")


def _checksums(root: Path) -> dict[str, dict[str, Any]]:
    return {path.relative_to(root).as_posix(): {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
            for path in sorted(_files(root))}


def _files(root: Path) -> Iterator[Path]:
    return (path for path in root.rglob("*") if path.is_file())


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _sync_tree(root: Path) -> None:
    """Flush every file and folder of ``root`` to disk, so the rename that publishes it publishes whole files."""
    for path in [*_files(root), *(p for p in root.rglob("*") if p.is_dir()), root]:
        fsync(path)


def _put_in_place(partial: Path, dest: Path) -> None:
    """Rename the finished backup to ``dest``; an existing one is moved aside first and removed last."""
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    if dest.exists():
        dest.rename(old)
    partial.rename(dest)
    fsync(dest.parent)
    shutil.rmtree(old, ignore_errors=True)


def _forget_partials(dest: Path) -> None:
    """Remove what backups to ``dest`` killed half-way left (their processes are gone)."""
    forget_leftovers(dest.parent, f".{dest.name}.partial-")

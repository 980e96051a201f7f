"""Catalog sources: a folder of images or a CSV/Parquet manifest, read as ``CatalogEntry`` rows."""

from __future__ import annotations

import base64
import datetime as _dt
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lookalike.errors import CatalogSourceError
from lookalike.io.images import SUPPORTED_EXTENSIONS

logger = logging.getLogger(__name__)

CSV_EXTENSIONS = frozenset({".csv"})
PARQUET_EXTENSIONS = frozenset({".parquet", ".pq"})
MANIFEST_EXTENSIONS = CSV_EXTENSIONS | PARQUET_EXTENSIONS

_KNOWN_COLUMNS = ("path", "category", "item_id")
MISSING = object()


@dataclass(frozen=True)
class CatalogEntry:
    """One catalog image: where it is, its category and item id if known, and any extra columns."""

    path: Path
    category: str | None = None
    item_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in SUPPORTED_EXTENSIONS


def iter_folder(root: Path) -> Iterator[CatalogEntry]:
    """Yield every image under ``root`` recursively, in a deterministic (sorted) order.

    The category is the name of the first-level sub-folder (``None`` for files directly in ``root``).
    Hidden files and folders (names starting with ``.``) and non-image files are skipped; symlinked
    files are listed, symlinked folders are not entered. Paths are absolute under the resolved root.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise CatalogSourceError(f"Catalog folder not found: {root}")
    if not root.is_dir():
        raise CatalogSourceError(f"Catalog source is not a folder: {root}")

    # Depth-first, files of a folder before its sub-folders, names sorted: stable across runs.
    stack: list[tuple[str, str | None]] = [(str(root.resolve()), None)]
    while stack:
        folder, category = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            logger.warning("Skipping unreadable folder %s: %s", folder, exc.strerror or exc)
            continue
        subfolders: list[tuple[str, str | None]] = []
        for entry in entries:
            if _is_hidden(entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append((entry.path, category if category is not None else entry.name))
                elif _is_image(entry.name) and entry.is_file():
                    yield CatalogEntry(path=Path(entry.path), category=category, item_id=None, metadata={})
            except OSError as exc:
                logger.warning("Skipping unreadable entry %s: %s", entry.path, exc.strerror or exc)
        stack.extend(reversed(subfolders))


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return False


def json_value(value: Any) -> Any:
    """Convert a pandas/numpy/pyarrow cell to a JSON-serialisable Python value (``MISSING`` for NaN)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [v for v in (json_value(x) for x in value) if v is not MISSING]
    if isinstance(value, dict):
        out = {str(k): json_value(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not MISSING}
    if _is_missing(value):
        return MISSING
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return MISSING
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, pd.Timestamp | _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, pd.Timedelta | _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    return str(value)


def optional_str(value: Any) -> str | None:
    """Cell to a stripped string, or ``None`` when missing or empty; integral floats lose their ``.0``."""
    if _is_missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _read_frame(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_EXTENSIONS:
            # Identity columns stay strings ("00123" must not become 123); others are inferred.
            return pd.read_csv(
                path,
                dtype={"path": str, "category": str, "item_id": str},
                skipinitialspace=True,
            )
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError as exc:
        raise CatalogSourceError(f"Manifest {path} is empty") from exc
    except Exception as exc:  # parser, pyarrow, encoding and OS errors alike
        raise CatalogSourceError(f"Could not read manifest {path}: {exc}") from exc


def read_manifest(path: Path) -> list[CatalogEntry]:
    """Read a CSV (``.csv``) or Parquet (``.parquet``/``.pq``) manifest.

    Required column ``path`` (relative paths are taken from the manifest's resolved folder and
    normalised, so every entry path is absolute); optional
    ``category`` and ``item_id`` (strings; empty or missing -> ``None``); every other column goes to
    ``metadata`` with NaN cells omitted.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CatalogSourceError(f"Manifest not found: {path}")
    if not path.is_file():
        raise CatalogSourceError(f"Manifest is not a file: {path}")
    if path.suffix.lower() not in MANIFEST_EXTENSIONS:
        allowed = ", ".join(sorted(MANIFEST_EXTENSIONS))
        raise CatalogSourceError(f"Unsupported manifest type {path.suffix!r} for {path}; expected {allowed}")

    frame = _read_frame(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.columns.duplicated().any():
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise CatalogSourceError(f"Manifest {path} has duplicate columns: {', '.join(dupes)}")
    if "path" not in frame.columns:
        found = ", ".join(frame.columns) or "none"
        raise CatalogSourceError(f"Manifest {path} has no 'path' column (columns found: {found})")

    base = path.resolve().parent
    extra = [c for c in frame.columns if c not in _KNOWN_COLUMNS]
    has_category = "category" in frame.columns
    has_item_id = "item_id" in frame.columns
    entries: list[CatalogEntry] = []
    for row_number, row in enumerate(frame.to_dict(orient="records"), start=1):
        raw_path = optional_str(row["path"])
        if raw_path is None:
            raise CatalogSourceError(f"Manifest {path}, data row {row_number}: empty 'path'")
        # Lexical normalisation under the resolved manifest folder: resolving every row would cost
        # several syscalls per path (seconds for 100k rows).
        item_path = Path(os.path.normpath(os.path.join(base, os.path.expanduser(raw_path))))
        metadata: dict[str, Any] = {}
        for column in extra:
            value = json_value(row[column])
            if value is not MISSING:
                metadata[column] = value
        entries.append(
            CatalogEntry(
                path=item_path,
                category=optional_str(row["category"]) if has_category else None,
                item_id=optional_str(row["item_id"]) if has_item_id else None,
                metadata=metadata,
            )
        )
    return entries


def open_source(path: Path, *, split: str | None = None) -> list[CatalogEntry]:
    """Open a catalog source: a folder (:func:`iter_folder`) or a manifest file (:func:`read_manifest`).

    ``split`` keeps only manifest rows whose ``split`` column equals it; asking for a split of a
    source without a ``split`` column is an error.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CatalogSourceError(f"Catalog source not found: {path}")
    if path.is_dir():
        if split is not None:
            raise CatalogSourceError(
                f"Cannot select split {split!r} from folder {path}: folders have no splits; use a manifest"
            )
        return list(iter_folder(path))

    entries = read_manifest(path)
    if split is None:
        return entries
    if not _has_column(path, "split"):
        raise CatalogSourceError(f"Manifest {path} has no 'split' column; cannot select split {split!r}")
    return [e for e in entries if str(e.metadata.get("split", "")) == split]


def _has_column(path: Path, column: str) -> bool:
    """Whether the manifest at ``path`` declares ``column`` (reads only the header/schema)."""
    try:
        if path.suffix.lower() in CSV_EXTENSIONS:
            names = pd.read_csv(path, nrows=0).columns
        else:
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
    except Exception as exc:
        raise CatalogSourceError(f"Could not read manifest {path}: {exc}") from exc
    return column in {str(n).strip() for n in names}


def has_split_column(path: Path) -> bool:
    """Whether ``path`` is a manifest with a ``split`` column (folders have none)."""
    path = Path(path).expanduser()
    return path.is_file() and _has_column(path, "split")

"""Backbone features cached by image content, so training, evaluation and re-indexing never decode twice.

Layout: ``ROOT/<backbone fingerprint>/shard-NNNNNN/{keys.npy,features.npy}``; each shard is written to a
temporary folder and renamed, so an interrupted run leaves whole shards only. A new backbone (another
fingerprint) gets a new folder: stale features can never be read for it.

Every process writing or opening the folder holds its lock (``.lock``) meanwhile. A catalog changed an item at a time
(the API's adds) writes a shard per change; once more than ``MAX_SMALL_SHARDS`` shards hold fewer than ``flush_every``
rows, the next writer or opener merges them into shards of up to ``flush_every`` rows, so shards (each a memory map in
every process) stay few.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from filelock import FileLock

from lookalike.io.files import forget_leftovers, safe_file_name

log = logging.getLogger(__name__)

KEY_DTYPE = "S40"
MAX_SMALL_SHARDS = 64  # shards of fewer than ``flush_every`` rows kept apart; past that they are merged


def lock_of(folder: Path) -> FileLock:
    """The lock that writers and openers of one backbone's folder hold (the folder must exist)."""
    return FileLock(folder / ".lock", is_singleton=True, preserve_lock_file=True, poll_interval=0.01)


def copy_cache(root: Path, dest: Path) -> None:
    """Copy the cached features of every backbone under ``root`` to ``dest``. Under each folder's lock only for the
    moment it takes to hard-link its shards (written once, never changed) into a snapshot beside them, which is then
    copied: no shard is merged away mid-copy, and writers never wait for the copy."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        forget_leftovers(folder, ".snapshot-")  # a backup that died
        snapshot = folder / f".snapshot-{os.getpid()}"
        shutil.rmtree(snapshot, ignore_errors=True)
        try:
            with lock_of(folder):
                shutil.copytree(folder, snapshot, ignore=shutil.ignore_patterns(".*"), copy_function=os.link)
            shutil.copytree(snapshot, dest / folder.name)
        finally:
            shutil.rmtree(snapshot, ignore_errors=True)


class _Table(NamedTuple):
    """Where each stored key's features are: (shard, row), and the shards' features (memory maps)."""

    where: dict[bytes, tuple[int, int]]
    shards: list[np.ndarray]


class FeatureCache:
    """Append-only store of float16 feature vectors keyed by content key (see ``hashing.content_key``)."""

    def __init__(self, root: Path, fingerprint: str, dim: int, flush_every: int = 4096) -> None:
        safe = safe_file_name(fingerprint)
        self.dir = root / safe
        self.dim = dim
        self.flush_every = flush_every
        self._table = _Table({}, [])  # lookups run in other threads: see flush
        self._pending_keys: list[bytes] = []
        self._pending: list[np.ndarray] = []
        self._pending_rows: dict[bytes, int] = {}  # key -> its row in ``_pending``
        if not self.dir.is_dir():
            return
        try:
            lock = self._locked()
            lock.acquire()
        except OSError as exc:  # a read-only copy, say: read it as it is
            log.warning("reading the feature cache %s without its lock: %s", self.dir, exc)
            self._table = self._read_all()
            return
        try:
            for tmp in self.dir.glob(".tmp-*"):  # a crashed writer's (a live one would hold the lock)
                shutil.rmtree(tmp, ignore_errors=True)
            self._compact()
            self._table = self._read_all()
        finally:
            lock.release()

    def _locked(self) -> FileLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        return lock_of(self.dir)

    def _shard_dirs(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*"))

    def _read(self, shard_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """A shard's keys and its features (memory-mapped); None for an unreadable one (logged)."""
        try:
            keys = np.load(shard_dir / "keys.npy")
            feats = np.load(shard_dir / "features.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable feature shard %s: %s", shard_dir, exc)
            return None
        if feats.shape != (len(keys), self.dim):
            log.warning("ignoring feature shard %s of shape %s", shard_dir, feats.shape)
            return None
        return keys, feats

    def _read_all(self) -> _Table:
        table = _Table({}, [])
        for shard_dir in self._shard_dirs():
            if (shard := self._read(shard_dir)) is not None:
                self._add(table, shard[0].tolist(), shard[1])
        return table

    @staticmethod
    def _add(table: _Table, keys: list[bytes], feats: np.ndarray) -> None:
        index = len(table.shards)
        table.shards.append(feats)
        for row, key in enumerate(keys):
            table.where[key] = (index, row)

    def _compact(self) -> bool:
        """Merge small shards, in order, into shards of up to ``flush_every`` rows when there are more than
        MAX_SMALL_SHARDS of them (lock held); whether any were merged. Each merged shard is in place before its parts
        go, so a crash between leaves duplicates, never gaps."""
        shard_dirs = self._shard_dirs()
        if len(shard_dirs) <= MAX_SMALL_SHARDS:
            return False
        small: list[tuple[Path, int]] = []
        for shard_dir in shard_dirs:
            try:
                rows = len(np.load(shard_dir / "keys.npy", mmap_mode="r"))
            except (OSError, ValueError):
                continue  # _read reports it
            if rows < self.flush_every:
                small.append((shard_dir, rows))
        if len(small) <= MAX_SMALL_SHARDS:
            return False
        groups: list[list[Path]] = [[]]
        total = 0
        for shard_dir, rows in small:
            if total + rows > self.flush_every:
                groups.append([])
                total = 0
            groups[-1].append(shard_dir)
            total += rows
        merged = 0
        for group in (g for g in groups if len(g) > 1):
            parts = {shard_dir: shard for shard_dir in group if (shard := self._read(shard_dir)) is not None}
            if len(parts) < 2:
                continue
            keys = np.concatenate([k for k, _ in parts.values()])
            _, first = np.unique(keys, return_index=True)
            first.sort()
            self._write(keys[first], np.concatenate([f for _, f in parts.values()])[first])
            for shard_dir in parts:  # an unreadable one stays, for someone to look at
                shutil.rmtree(shard_dir, ignore_errors=True)
            merged += len(parts)
        if merged:
            log.info("merged %d small feature shards in %s", merged, self.dir)
        return merged > 0

    def _write(self, keys: np.ndarray, features: np.ndarray) -> Path:
        """Write a new shard atomically (lock held); returns its folder."""
        shard = len(self._shard_dirs())
        while (final := self.dir / f"shard-{shard:06d}").exists():
            shard += 1
        tmp = self.dir / f".tmp-{os.getpid()}-{shard}"
        tmp.mkdir()
        np.save(tmp / "keys.npy", keys)
        np.save(tmp / "features.npy", features)
        os.replace(tmp, final)
        return final

    def __len__(self) -> int:
        return len(self._table.where) + len(self._pending_keys)

    def __contains__(self, key: str) -> bool:
        # Pending first: ``flush`` adds keys to ``_where`` before it clears them here (lookups run in threads).
        raw = key.encode()
        return raw in self._pending_rows or raw in self._table.where

    def get(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(found mask, features float32 (len(keys), dim))``; rows not found are zero."""
        found = np.zeros(len(keys), bool)
        out = np.zeros((len(keys), self.dim), np.float32)
        where, shards = self._table
        for i, key in enumerate(keys):
            raw = key.encode()
            if (loc := where.get(raw)) is not None:
                out[i] = shards[loc[0]][loc[1]]
                found[i] = True
            elif (j := self._pending_rows.get(raw)) is not None:
                out[i] = self._pending[j]
                found[i] = True
        return found, out

    def put(self, keys: Sequence[str], features: np.ndarray) -> None:
        """Add features of keys not stored yet; they are written to disk every ``flush_every`` rows and by ``flush``."""
        for key, row in zip(keys, np.asarray(features, np.float16), strict=True):
            raw = key.encode()
            if raw not in self._table.where and raw not in self._pending_rows:
                self._pending_rows[raw] = len(self._pending_keys)
                self._pending_keys.append(raw)
                self._pending.append(row)
        if len(self._pending_keys) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write pending features as one new shard (atomically), then merge small shards if they became too many."""
        if not self._pending_keys:
            return
        with self._locked():
            final = self._write(np.array(self._pending_keys, dtype=KEY_DTYPE),
                                np.stack(self._pending).astype(np.float16))
            if self._compact():
                self._table = self._read_all()  # whole: shards it held are gone (their memory maps stay valid)
            else:  # in place, the shard before its keys: a lookup never meets a key whose shard is not there yet
                self._add(self._table, self._pending_keys, np.load(final / "features.npy", mmap_mode="r"))
        # only now, as a lookup finds each key in the table or among the pending ones
        self._pending_keys, self._pending, self._pending_rows = [], [], {}

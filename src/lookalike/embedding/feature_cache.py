"""Backbone features cached by image content, so training, evaluation and re-indexing never decode twice.

Layout: ``ROOT/<backbone fingerprint>/shard-NNNNNN/{keys.npy,features.npy}``; each shard is written to a
temporary folder and renamed, so an interrupted run leaves whole shards only. A new backbone (another
fingerprint) gets a new folder: stale features can never be read for it.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lookalike.io.files import safe_file_name

log = logging.getLogger(__name__)

KEY_DTYPE = "S40"


class FeatureCache:
    """Append-only store of float16 feature vectors keyed by content key (see ``hashing.content_key``)."""

    def __init__(self, root: Path, fingerprint: str, dim: int, flush_every: int = 4096) -> None:
        safe = safe_file_name(fingerprint)
        self.dir = root / safe
        self.dim = dim
        self.flush_every = flush_every
        self._where: dict[bytes, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        self._pending_keys: list[bytes] = []
        self._pending: list[np.ndarray] = []
        self._pending_rows: dict[bytes, int] = {}  # key -> its row in ``_pending``
        self._load()

    def _load(self) -> None:
        if not self.dir.is_dir():
            return
        for tmp in self.dir.glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        for shard_dir in sorted(self.dir.glob("shard-*")):
            try:
                keys = np.load(shard_dir / "keys.npy")
                feats = np.load(shard_dir / "features.npy", mmap_mode="r")
            except (OSError, ValueError) as exc:
                log.warning("ignoring unreadable feature shard %s: %s", shard_dir, exc)
                continue
            if feats.shape != (len(keys), self.dim):
                log.warning("ignoring feature shard %s of shape %s", shard_dir, feats.shape)
                continue
            shard = len(self._shards)
            self._shards.append(feats)
            for row, key in enumerate(keys.tolist()):
                self._where[key] = (shard, row)

    def __len__(self) -> int:
        return len(self._where) + len(self._pending_keys)

    def __contains__(self, key: str) -> bool:
        # Pending first: ``flush`` adds keys to ``_where`` before it clears them here (lookups run in threads).
        raw = key.encode()
        return raw in self._pending_rows or raw in self._where

    def get(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(found mask, features float32 (len(keys), dim))``; rows not found are zero."""
        found = np.zeros(len(keys), bool)
        out = np.zeros((len(keys), self.dim), np.float32)
        for i, key in enumerate(keys):
            raw = key.encode()
            if (loc := self._where.get(raw)) is not None:
                out[i] = self._shards[loc[0]][loc[1]]
                found[i] = True
            elif (j := self._pending_rows.get(raw)) is not None:
                out[i] = self._pending[j]
                found[i] = True
        return found, out

    def put(self, keys: Sequence[str], features: np.ndarray) -> None:
        """Add features of keys not stored yet; they are written to disk every ``flush_every`` rows and by ``flush``."""
        for key, row in zip(keys, np.asarray(features, np.float16), strict=True):
            raw = key.encode()
            if raw not in self._where and raw not in self._pending_rows:
                self._pending_rows[raw] = len(self._pending_keys)
                self._pending_keys.append(raw)
                self._pending.append(row)
        if len(self._pending_keys) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write pending features as one new shard (atomically)."""
        if not self._pending_keys:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        shard = len(self._shards)
        while (final := self.dir / f"shard-{shard:06d}").exists():
            shard += 1
        tmp = self.dir / f".tmp-{os.getpid()}-{shard}"
        tmp.mkdir()
        keys = np.array(self._pending_keys, dtype=KEY_DTYPE)
        np.save(tmp / "keys.npy", keys)
        np.save(tmp / "features.npy", np.stack(self._pending).astype(np.float16))
        os.replace(tmp, final)
        feats = np.load(final / "features.npy", mmap_mode="r")
        index = len(self._shards)
        self._shards.append(feats)
        for row, key in enumerate(self._pending_keys):
            self._where[key] = (index, row)
        self._pending_keys, self._pending, self._pending_rows = [], [], {}

"""Which vector store an engine uses: FAISS in this process, or Milvus (Lite or a server), by configuration.

The only module that imports both stores."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lookalike.errors import VectorStoreError
from lookalike.index.base import IndexManifest, VectorStore
from lookalike.index.faiss_store import FaissStore
from lookalike.index.milvus_config import MilvusConfig

StoreKind = Literal["faiss", "milvus"]


def open_store(kind: StoreKind, manifest: IndexManifest, *, faiss_dir: Path, milvus: MilvusConfig | None = None,
               fresh: bool = False) -> VectorStore:
    """The saved store of this kind (refused when built by another model), or an empty one when ``fresh``."""
    if kind == "milvus":
        if milvus is None:
            raise ValueError("the Milvus store needs a MilvusConfig")
        try:
            from lookalike.index.milvus_store import MilvusStore  # pymilvus is an optional dependency
        except ImportError as exc:
            raise VectorStoreError(f"the Milvus store needs pymilvus ({exc}): pip install 'lookalike[milvus]'") from exc
        return MilvusStore.open(milvus, manifest, fresh=fresh)
    if FaissStore.exists(faiss_dir) and not fresh:
        return FaissStore.load(faiss_dir, manifest)
    return FaissStore(faiss_dir, manifest)

"""Which vector store an engine uses: FAISS in this process, or Milvus (Lite or a server), by configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from lookalike.errors import VectorStoreError
from lookalike.index.base import IndexManifest, VectorStore
from lookalike.index.faiss_store import FaissStore

StoreKind = Literal["faiss", "milvus"]


@dataclass(frozen=True)
class MilvusConfig:
    """Where the collection lives: ``uri`` is a Milvus Lite file path (``*.db``) or ``http(s)://host:port``."""

    uri: str
    token: str | None = None
    collection: str = "lookalike"
    index_type: str = "HNSW"

    @property
    def is_lite(self) -> bool:
        return self.uri.endswith(".db")

    @property
    def safe_uri(self) -> str:
        """The URI without any credentials written into it, for logs and ``describe``."""
        parts = urlsplit(self.uri)
        if parts.password is None:
            return self.uri
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}"))


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

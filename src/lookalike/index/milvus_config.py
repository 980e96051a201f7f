"""Where a Milvus collection lives; free of pymilvus, so configuring Milvus never needs it installed."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


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

"""Settings, read from the environment (prefix ``LOOKALIKE_``) or a ``.env`` file.

Only the CLI and the API build Settings; the core takes plain values as arguments.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_HOME = Path.home() / ".lookalike"


class Settings(BaseSettings):
    """Every configurable value of Lookalike."""

    model_config = SettingsConfigDict(env_prefix="LOOKALIKE_", env_file=".env", extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="Root folder of all persisted data.")
    models_dir: Path | None = Field(None, description="Exported backbones (a rebuildable cache); default HOME/models.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///HOME/catalog.db.")
    backbone: str = Field("efficientnet-lite0-multiscale", description="Registry name or onnx:PATH.")
    backbone_weights: str | None = Field(
        None, description="Weights file for the backbone; default its packaged or cached ImageNet weights."
    )
    vector_store: Literal["faiss", "milvus"] = Field("faiss", description="In-process FAISS, or Milvus.")
    milvus_uri: str | None = Field(None, description="Milvus Lite file or http://host:19530; default HOME/milvus.db.")
    milvus_token: SecretStr | None = Field(None, description="Milvus credentials, 'user:password' or an API key.")
    milvus_collection: str = Field("lookalike", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
    milvus_index: Literal["HNSW", "FLAT", "IVF_FLAT"] = Field("HNSW", description="Milvus vector index type.")
    index_memory_budget_mb: int = Field(2048, description="Memory the vector index may use.")
    batch_size: int = Field(32, ge=1, le=1024)
    decode_workers: int = Field(2, ge=1, le=64)
    max_image_pixels: int = Field(40_000_000, ge=1, description="Decompression-bomb guard.")
    checkpoint_every: int = Field(2048, ge=1, description="Ingest saves the index every N items.")
    fashion_mnist_dir: Path = Path("/usr/share/datasets/fashion-mnist")
    onnx_threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads; 0 = all cores.")
    query_batching: bool = Field(True, description="Share backbone passes between concurrent API queries.")
    colour_weight: float = Field(
        2.0, ge=0, le=10, description="How much colour ranks image searches in a catalog in colour: a full colour "
        "mismatch costs this share of the candidates' score range (0 = colour does not rank)."
    )
    search_threads: int = Field(
        1, ge=0, description="FAISS and BLAS threads per query in the server; 0 = all cores (parallelism comes "
        "from concurrent requests)."
    )
    api_token: SecretStr | None = Field(None, description="Bearer token for catalog changes; unset = read-only.")
    max_upload_mb: float = Field(10.0, gt=0, description="Largest accepted upload.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed to call the API.")
    request_threads: int = Field(
        8, ge=1, le=1000, description="Threads running request handlers in each server process (FastAPI's pool, 40 "
        "by default): they run the backbone and index passes too, at most cores / workers at once, and fewer "
        "handlers contend less for the GIL (BENCHMARKS.md)."
    )
    read_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Keys for reading (searches, items, the dashboard's data), comma-separated; "
        "none: anyone may read. The write token reads too.")
    search_rate: float = Field(0.0, ge=0, description="Searches per second one client address may make (a token "
                                                      "bucket); 0: no limit.")
    shopper_search_rate: float = Field(0.0, ge=0, description="Searches per second one shopper id may make; 0: no "
                                                              "limit.")
    search_burst: int = Field(20, ge=1, description="Searches a client or shopper may make at once, above the rate.")
    write_rate: float = Field(0.0, ge=0, description="Catalog changes per second one client address may make; 0: no "
                                                     "limit.")
    write_burst: int = Field(10, ge=1, description="Catalog changes a client may make at once, above the rate.")
    log_format: Literal["text", "json"] = Field("text", description="Server logs as text, or as JSON lines; both "
                                                                    "carry each request's id.")
    access_log: bool = Field(False, description="Log a line per request (method, path, status, milliseconds).")
    metrics_public: bool = Field(False, description="Answer GET /metrics to any client, not only to 127.0.0.1.")
    runtime_dir: Path | None = Field(None, description="Where a running server's processes share metrics and rate "
                                                       "limits; `serve --workers N` makes one.")
    workers: int = Field(
        1, ge=1, le=64, description="Server processes. More than one gets past Python's one-core limit on request "
        "handling; each loads the index and reloads it when another one saves a change."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    fetch_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hosts or networks (CIDR) that image downloads may reach although they are "
        "not public (loopback, private, link-local), comma-separated; none by default.")
    fetch_concurrency: int = Field(16, ge=1, le=256, description="Image downloads at once.")
    fetch_per_host: int = Field(4, ge=1, le=64, description="Image downloads at once from one host.")
    fetch_timeout: float = Field(20.0, gt=0, le=600, description="Seconds to wait for an image server's answer.")
    fetch_retries: int = Field(3, ge=0, le=10, description="Retries of a download that timed out or got a 5xx/429.")

    @field_validator("fetch_allow_hosts", "read_tokens", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @cached_property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.home / "models"

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'catalog.db'}"

    @cached_property
    def resolved_milvus_uri(self) -> str:
        return self.milvus_uri or str(self.home / "milvus.db")

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def heads_dir(self) -> Path:
        """Trained embedding heads (one active head per backbone)."""
        return self.home / "heads"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def features_dir(self) -> Path:
        return self.home / "features"

    @property
    def images_dir(self) -> Path:
        """Downloaded product images, kept by content."""
        return self.home / "images"


def get_settings() -> Settings:
    """Build Settings from the current environment (never at import time)."""
    return Settings()

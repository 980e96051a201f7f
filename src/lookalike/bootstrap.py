"""The composition root: builds an Engine (backbone, head, feature cache, catalog, vector store) from Settings.

The CLI and the API both call :func:`open_engine`; nothing below this module reads Settings.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lookalike.ingest
from lookalike.backbone.runtime import FeatureExtractor, load_backbone
from lookalike.catalog.repository import Catalog
from lookalike.config import Settings
from lookalike.embedding.feature_cache import FeatureCache
from lookalike.embedding.featurizer import Featurizer
from lookalike.embedding.head import BACKBONE_WEIGHTS_INFO, EmbeddingHead, identity_head
from lookalike.engine import Engine, index_manifest
from lookalike.errors import ModelMismatchError
from lookalike.index.milvus_config import MilvusConfig
from lookalike.index.open_store import open_store
from lookalike.io.blobs import ImageStore
from lookalike.io.fetch import Fetcher, FetchLimits
from lookalike.io.files import safe_file_name
from lookalike.sync import FeedSync

log = logging.getLogger(__name__)


def head_path(heads_dir: Path, backbone: str) -> Path:
    """Where the active embedding head for a backbone lives."""
    return heads_dir / f"{safe_file_name(backbone)}.npz"


def load_head(heads_dir: Path, extractor: FeatureExtractor) -> EmbeddingHead:
    """The trained head for this backbone, or the identity head when none was trained yet."""
    path = head_path(heads_dir, extractor.name)
    if not path.is_file():
        return identity_head(extractor.num_features, extractor.fingerprint)
    head = EmbeddingHead.load(path, extractor.threads)
    head.check_backbone(extractor.fingerprint)
    return head


def load_extractor(settings: Settings, fine_tuned: bool = True) -> FeatureExtractor:
    """The configured backbone; unless ``fine_tuned`` is False, the fine-tuned one the active head was trained
    with (``lookalike train --fine-tune-blocks``), if it was."""
    weights = (fine_tuned_weights(settings) if fine_tuned else None) or settings.backbone_weights
    return load_backbone(settings.backbone, settings.resolved_models_dir, weights, settings.onnx_threads)


def fine_tuned_weights(settings: Settings) -> str | None:
    """The weights file of the fine-tuned backbone that the active head names, or None."""
    path = head_path(settings.heads_dir, settings.backbone)
    name = EmbeddingHead.read_info(path).get(BACKBONE_WEIGHTS_INFO) if path.is_file() else None
    if not name:
        return None
    weights = settings.heads_dir / name
    if not weights.is_file():
        raise ModelMismatchError(f"the embedding head {path} was trained with the fine-tuned backbone {weights}, "
                                 "which is missing; train again (`lookalike train`)")
    return str(weights)


def build_featurizer(settings: Settings, extractor: FeatureExtractor) -> Featurizer:
    cache = FeatureCache(settings.features_dir, extractor.fingerprint, extractor.num_features)
    return Featurizer(cache=cache, extractor=extractor, batch_size=settings.batch_size,
                      workers=settings.decode_workers, max_pixels=settings.max_image_pixels)


def fetch_limits(settings: Settings) -> FetchLimits:
    return FetchLimits(concurrency=settings.fetch_concurrency, per_host=settings.fetch_per_host,
                       read_timeout=settings.fetch_timeout, retries=settings.fetch_retries,
                       max_bytes=int(settings.max_upload_mb * 2**20), allow=tuple(settings.fetch_allow_hosts))


def feed_sync(settings: Settings, engine: Engine) -> FeedSync:
    """A feed sync into the engine's catalog, with the configured download limits (a context manager)."""
    return FeedSync(engine, ImageStore(settings.images_dir), Fetcher(fetch_limits(settings)))


def milvus_config(settings: Settings) -> MilvusConfig:
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    return MilvusConfig(settings.resolved_milvus_uri, token, settings.milvus_collection, settings.milvus_index)


def open_engine(settings: Settings, *, fresh_index: bool = False, reconcile: bool = True) -> Engine:
    """Load everything; ``fresh_index`` starts an empty index (rebuilt from the catalog by reconcile).

    Raises ModelMismatchError when the saved index was built by another model (unless ``fresh_index``).
    """
    extractor = load_extractor(settings)
    head = load_head(settings.heads_dir, extractor)
    manifest = index_manifest(extractor, head)
    store = open_store(settings.vector_store, manifest, faiss_dir=settings.index_dir,
                       milvus=milvus_config(settings), fresh=fresh_index)
    engine = Engine(
        featurizer=build_featurizer(settings, extractor),
        head=head,
        catalog=Catalog(settings.resolved_database_url),
        store=store,
        memory_budget_bytes=settings.index_memory_budget_mb * 2**20,
        checkpoint_every=settings.checkpoint_every,
    )
    if reconcile:
        report = lookalike.ingest.reconcile(engine)
        if report.changed:
            log.warning("index repaired to match the catalog: %s", report)
    return engine


def open_rebuilt_engine(settings: Settings, progress: lookalike.ingest.Progress | None = None,
                        ) -> tuple[Engine, lookalike.ingest.ReconcileReport]:
    """An engine whose index was rebuilt from the catalog with the current model (after a new head, or when the
    saved index was built by another model); returns it and what the rebuild did."""
    engine = open_engine(settings, fresh_index=True, reconcile=False)
    try:
        return engine, lookalike.ingest.reindex(engine, progress)
    except BaseException:
        engine.close()
        raise


def open_current_engine(settings: Settings, progress: lookalike.ingest.Progress | None = None) -> Engine:
    """The engine, its index rebuilt first when the saved one was built by another model."""
    try:
        return open_engine(settings)
    except ModelMismatchError:
        log.warning("the saved index was built by another model: rebuilding it from the catalog")
        return open_rebuilt_engine(settings, progress)[0]

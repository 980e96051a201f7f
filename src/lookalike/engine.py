"""The Engine: the loaded backbone (in its featurizer), head, catalog and vector store that a search or an ingest
works with, and the model version they make. Built by :func:`lookalike.bootstrap.open_engine`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookalike.backbone.runtime import FeatureExtractor
from lookalike.catalog.repository import Catalog
from lookalike.embedding.featurizer import Featurizer
from lookalike.embedding.head import EmbeddingHead
from lookalike.index.base import IndexManifest, VectorStore


@dataclass
class Engine:
    """Everything a search or an ingest needs, loaded once."""

    featurizer: Featurizer
    head: EmbeddingHead
    catalog: Catalog
    store: VectorStore
    memory_budget_bytes: int
    checkpoint_every: int = 2048

    @property
    def extractor(self) -> FeatureExtractor:
        return self.featurizer.extractor

    @property
    def model_version(self) -> str:
        return model_version(self.extractor, self.head)

    def embed(self, features: np.ndarray) -> np.ndarray:
        """Backbone features -> L2-normalized embeddings."""
        return self.head(features)

    def embed_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """Prepared backbone inputs (N, 3, S, S) -> L2-normalized embeddings."""
        return self.head(self.extractor(inputs))

    def save(self) -> None:
        if self.store.dirty:
            self.store.save()
        if self.featurizer.cache is not None:
            self.featurizer.cache.flush()

    def close(self) -> None:
        self.save()
        self.store.close()
        self.catalog.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def model_version(extractor: FeatureExtractor, head: EmbeddingHead) -> str:
    return f"{extractor.fingerprint}+{head.version}"


def index_manifest(extractor: FeatureExtractor, head: EmbeddingHead) -> IndexManifest:
    return IndexManifest(model_version(extractor, head), extractor.fingerprint, head.checksum, head.dim)

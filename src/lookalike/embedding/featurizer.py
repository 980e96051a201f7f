"""Images -> backbone features, in batches: read bytes, look up the cache, decode the misses in
worker threads (overlapping with inference), run the backbone, fill the cache.

A catalog's batches go through the backbone ``streams`` at a time (one per core by default), each on one
ONNX Runtime thread: threads of one run wait for each other at every layer, and decoding threads take their
cores away, while independent runs keep every core busy (faster than one run on all cores, more so for ingest, with
decoding beside it: BENCHMARKS.md). One batch more than there are streams is in flight, so that the caller writing
a finished batch to the catalog leaves no stream idle.

Unreadable images are reported with their reason and skipped; they never stop a batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from lookalike.backbone.runtime import FeatureExtractor
from lookalike.concurrency import bounded_map
from lookalike.embedding.feature_cache import FeatureCache
from lookalike.errors import ImageDecodeError
from lookalike.hashing import content_key
from lookalike.io.images import decode_pixels, read_image_file

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class FeatureBatch(Generic[T]):
    """Features of the readable items of one batch, and the reasons the others were skipped."""

    items: list[T]
    keys: list[str]
    features: np.ndarray
    failures: list[tuple[T, str]] = field(default_factory=list)
    decoded: int = 0  # how many went through the backbone (cache misses)


@dataclass
class _Prepared(Generic[T]):
    item: T
    key: str | None = None
    tensor: np.ndarray | None = None
    error: str | None = None


class Featurizer:
    """Backbone features for catalog items, cached by content."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        cache: FeatureCache | None = None,
        *,
        batch_size: int = 32,
        workers: int = 2,
        max_pixels: int = 40_000_000,
        streams: int = 0,
    ) -> None:
        self.extractor = extractor
        self.cache = cache
        self.batch_size = batch_size
        self.workers = workers
        self.max_pixels = max_pixels
        self.streams = streams or os.cpu_count() or 1

    @cached_property
    def _bulk_extractor(self) -> FeatureExtractor:
        """The backbone for catalog batches: one thread per run when several run at once (made on first use)."""
        if self.streams == 1 or self.extractor.threads == 1:
            return self.extractor
        return self.extractor.with_threads(1)

    def prepare(self, source: bytes | Path) -> np.ndarray:
        """Decode one image and turn it into the backbone's input tensor (raises ImageDecodeError)."""
        size = self.extractor.preprocessing.input_size
        pixels = decode_pixels(source, max_pixels=self.max_pixels, draft_size=size)
        return self.extractor.prepare(pixels)

    def prepare_many(self, sources: list[bytes | Path], labels: Sequence[str] | None = None) -> np.ndarray:
        """The backbone inputs of query images (N, 3, S, S); raises ImageDecodeError for the first bad one, its
        message led by the image's label when ``labels`` are given."""
        size = self.extractor.preprocessing.input_size

        def prepare(position: int) -> np.ndarray:
            try:
                return self.prepare(sources[position])
            except ImageDecodeError as exc:
                if labels is None:
                    raise
                raise type(exc)(f"{labels[position]}: {exc}") from None

        tensors = list(bounded_map(prepare, range(len(sources)), min(self.workers, len(sources)), 2 * self.workers))
        return np.stack(tensors) if tensors else np.zeros((0, 3, size, size), np.float32)

    def features_of(self, sources: list[bytes | Path]) -> np.ndarray:
        """Features of query images (no cache); raises ImageDecodeError naming the first bad one."""
        return self.extractor(self.prepare_many(sources))

    def iter_batches(self, items: Iterable[T], source_of: Callable[[T], Path | bytes]) -> Iterator[FeatureBatch[T]]:
        """Features of catalog items in batches of ``batch_size``, in order, skipping unreadable ones.

        ``source_of(item)`` gives the image's path, or its bytes (made in the worker threads, e.g. a rendering).
        """

        def load(item: T) -> _Prepared[T]:
            try:
                source = source_of(item)
                data = source if isinstance(source, bytes) else read_image_file(source)
                key = content_key(data)
                if self.cache is not None and key in self.cache:
                    return _Prepared(item, key)
                return _Prepared(item, key, self.prepare(data))
            except ImageDecodeError as exc:
                return _Prepared(item, error=str(exc))

        # A computed batch may wait for the caller (its catalog writes, say) while every stream computes another.
        batches_in_flight = self.streams + 1
        in_flight = self.batch_size * (batches_in_flight + 1) + self.workers
        prepared = iter(bounded_map(load, items, self.workers, in_flight))
        batches = iter(lambda: list(islice(prepared, self.batch_size)), [])
        for batch, computed in bounded_map(self._compute, batches, self.streams, in_flight=batches_in_flight):
            yield self._assemble(batch, computed)
        if self.cache is not None:
            self.cache.flush()

    def _compute(self, batch: list[_Prepared[T]]) -> tuple[list[_Prepared[T]], np.ndarray | None]:
        """The backbone's features of the batch's decoded images (cache misses), in order; runs in a stream."""
        tensors = [p.tensor for p in batch if p.tensor is not None]
        return batch, self._bulk_extractor(np.stack(tensors)) if tensors else None

    def _assemble(self, batch: list[_Prepared[T]], computed: np.ndarray | None) -> FeatureBatch[T]:
        ok = [p for p in batch if p.error is None]
        failures = [(p.item, p.error or "") for p in batch if p.error is not None]
        keys = [p.key or "" for p in ok]
        features = np.zeros((len(ok), self.extractor.num_features), np.float32)
        misses = [i for i, p in enumerate(ok) if p.tensor is not None]
        if computed is not None:
            features[misses] = computed
            if self.cache is not None:
                self.cache.put([keys[i] for i in misses], computed)
        hits = [i for i, p in enumerate(ok) if p.tensor is None]
        if hits and self.cache is not None:
            found, cached = self.cache.get([keys[i] for i in hits])
            features[hits] = cached
            assert found.all(), "a cache hit vanished"
        return FeatureBatch([p.item for p in ok], keys, features, failures, decoded=len(misses))


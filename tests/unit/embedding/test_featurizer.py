"""Featurizer: a catalog's batches through the backbone several at once give what one at a time gives."""

import time
from pathlib import Path

import numpy as np

from lookalike.backbone.runtime import FeatureExtractor
from lookalike.embedding.feature_cache import FeatureCache
from lookalike.embedding.featurizer import Featurizer


def _catalog(catalog_dir: Path, tmp_path: Path) -> list[Path]:
    paths = sorted(catalog_dir.rglob("*.png"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return paths[:7] + [broken] + paths[7:]


def _run(featurizer: Featurizer, paths: list[Path]) -> tuple[list[Path], np.ndarray, list[Path], int]:
    batches = list(featurizer.iter_batches(paths, lambda p: p))
    items = [item for b in batches for item in b.items]
    failed = [item for b in batches for item, _ in b.failures]
    return items, np.concatenate([b.features for b in batches]), failed, sum(b.decoded for b in batches)


def test_concurrent_streams_give_the_features_of_one_stream_in_order(
        extractor: FeatureExtractor, catalog_dir: Path, tmp_path: Path) -> None:
    paths = _catalog(catalog_dir, tmp_path)
    serial = Featurizer(extractor, batch_size=4, workers=1, streams=1)
    parallel = Featurizer(extractor, batch_size=4, workers=2, streams=3)

    items, features, failed, decoded = _run(serial, paths)
    items2, features2, failed2, decoded2 = _run(parallel, paths)

    assert items2 == items == [p for p in paths if p.name != "broken.jpg"]
    assert failed2 == failed == [tmp_path / "broken.jpg"]
    assert decoded2 == decoded == len(items)
    np.testing.assert_allclose(features2, features, rtol=1e-4, atol=1e-5)
    assert parallel._bulk_extractor.threads == 1
    assert parallel._bulk_extractor.fingerprint == extractor.fingerprint
    assert serial._bulk_extractor is extractor


def test_cache_hits_and_misses_mix_in_concurrent_batches(
        extractor: FeatureExtractor, catalog_dir: Path, tmp_path: Path) -> None:
    paths = _catalog(catalog_dir, tmp_path)
    cache = FeatureCache(tmp_path / "features", extractor.fingerprint, extractor.num_features)
    warm = Featurizer(extractor, cache, batch_size=4, streams=2)
    _, expected, _, _ = _run(Featurizer(extractor, batch_size=4, streams=1), paths)
    _run(warm, paths[::2])  # every other image cached

    items, features, failed, decoded = _run(warm, paths)

    assert len(items) == len(expected) and failed == [tmp_path / "broken.jpg"]
    assert decoded == len([p for p in paths[1::2] if p.name != "broken.jpg"])
    np.testing.assert_allclose(features, expected, rtol=2e-3, atol=2e-3)  # the cache keeps float16


def test_every_stream_keeps_computing_while_the_caller_holds_a_batch(
        extractor: FeatureExtractor, catalog_dir: Path, tmp_path: Path) -> None:
    computed: list[int] = []  # list.append is atomic: the streams' threads append

    class Counting(Featurizer):
        def _compute(self, batch):  # type: ignore[no-untyped-def]
            result = super()._compute(batch)
            computed.append(len(batch))
            return result

    featurizer = Counting(extractor, batch_size=2, workers=2, streams=2)
    paths = _catalog(catalog_dir, tmp_path)
    batches = featurizer.iter_batches(paths, lambda p: p)
    next(batches)  # the caller now writes this batch to the catalog, slowly
    deadline = time.monotonic() + 10
    while len(computed) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(computed) == 3  # the batch held, and one more for each stream
    time.sleep(0.2)
    assert len(computed) == 3  # and no more than that in memory
    assert len(list(batches)) == (len(paths) + 1) // 2 - 1  # the rest, all of them

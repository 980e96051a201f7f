"""Switching a catalog from FAISS to Milvus (Lite) by reindexing from the feature cache, then the CLI on Milvus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from lookalike.backbone.runtime import FeatureExtractor
from lookalike.bootstrap import open_engine
from lookalike.data.sources import open_source
from lookalike.embedding import featurizer
from lookalike.ingest import ingest, reindex
from lookalike.search import SearchService


def test_reindex_into_milvus_uses_the_feature_cache_not_the_backbone(settings, catalog_dir, monkeypatch):
    with_faiss = open_engine(settings)
    ingest(with_faiss, open_source(catalog_dir))
    _, faiss_ids = with_faiss.store.search(with_faiss.embed(with_faiss.featurizer.cache.get(
        [r.content_hash for r in with_faiss.catalog.iter_items()])[1]), 5)
    with_faiss.close()

    def never(*_args, **_kwargs):
        raise AssertionError("an image was decoded or run through the backbone again")

    milvus_settings = settings.model_copy(update={"vector_store": "milvus", "milvus_index": "FLAT"})
    engine = open_engine(milvus_settings, fresh_index=True, reconcile=False)
    monkeypatch.setattr(featurizer, "read_image_file", never)
    monkeypatch.setattr(FeatureExtractor, "__call__", never)
    report = reindex(engine)
    monkeypatch.undo()
    assert report.added == 18 and not report.unreadable
    assert engine.store.describe()["type"] == "milvus:FLAT" and len(engine.store) == 18
    vectors = engine.embed(engine.featurizer.cache.get([r.content_hash for r in engine.catalog.iter_items()])[1])
    _, milvus_ids = engine.store.search(vectors, 5)
    assert np.array_equal(faiss_ids, milvus_ids)  # both exact: the same neighbours
    query = next((catalog_dir / "stripes").iterdir())
    hits = SearchService(engine).search_images([query], k=3, category="stripes")[0].hits
    assert hits[0].path == str(query) and {h.category for h in hits} == {"stripes"}
    engine.close()
    for reopened in (open_engine(milvus_settings), open_engine(settings)):  # Milvus persisted; FAISS kept too
        assert len(reopened.store) == 18
        reopened.close()


def test_cli_switches_to_milvus_without_the_images_and_searches(tmp_path: Path, models_dir: Path, extractor,
                                                                catalog_dir: Path, query_dir: Path):
    catalog = tmp_path / "catalog"
    shutil.copytree(catalog_dir, catalog)
    env = {**os.environ, "LOOKALIKE_HOME": str(tmp_path / "home"), "LOOKALIKE_MODELS_DIR": str(models_dir),
           "LOOKALIKE_BATCH_SIZE": "8"}

    def lookalike(*args: str, **extra: str) -> str:
        result = subprocess.run([sys.executable, "-m", "lookalike.cli", *args], env={**env, **extra},
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr, result.stderr  # no server-side noise from Milvus Lite either
        return result.stdout

    assert "added 18 of 18 images" in lookalike("ingest", str(catalog))
    shutil.rmtree(catalog)  # the switch must not need the images: only the feature cache
    milvus = {"LOOKALIKE_VECTOR_STORE": "milvus"}
    assert "reindexed 18 items" in lookalike("ingest", "--reindex", **milvus)
    info = json.loads(lookalike("info", "--json", **milvus))
    assert info["items"] == 18 and info["index"]["type"] == "milvus:HNSW"
    assert info["index"]["uri"] == str(tmp_path / "home" / "milvus.db")
    lines = [json.loads(line) for line in lookalike("search", str(query_dir), "-k", "3", "--json", **milvus)
             .splitlines()]
    assert len(lines) == 6 and all(len(line["results"]) == 3 for line in lines)
    assert sum(Path(line["query"]).parent.name == line["results"][0]["category"] for line in lines) >= 5
    query = str(next(query_dir.rglob("*.jpg")))
    filtered = json.loads(lookalike("search", query, "--category", "checks", "--json", **milvus))
    assert {r["category"] for r in filtered["results"]} == {"checks"}

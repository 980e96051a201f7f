"""The same operations on FaissStore and MilvusStore (Milvus Lite, a file in tmp_path) give the same answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.errors import IndexCorruptError, ModelMismatchError
from lookalike.index.base import IndexManifest, VectorStore
from lookalike.index.faiss_store import FaissStore
from lookalike.index.milvus_config import MilvusConfig
from lookalike.index.milvus_store import MilvusStore

DIM = 24
MANIFEST = IndexManifest("bb@1+head@2", "bb@1", "2" * 64, DIM)
CATEGORIES = ["shirt", "dress", 'o\'neil "quoted" \\ é', None]
N = 600


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def milvus(tmp_path: Path, index_type: str = "FLAT", manifest: IndexManifest = MANIFEST,
           fresh: bool = False) -> MilvusStore:
    return MilvusStore.open(MilvusConfig(str(tmp_path / "milvus.db"), index_type=index_type), manifest, fresh)


def exact_and_milvus(tmp_path: Path, index_type: str) -> tuple[FaissStore, MilvusStore]:
    """An exact FAISS store and a Milvus store of ``index_type``, both after :func:`apply_history`."""
    exact, store = FaissStore(tmp_path / "faiss", MANIFEST), milvus(tmp_path, index_type)
    for each in (exact, store):
        apply_history(each)
    return exact, store


def recall_at_10(truth: np.ndarray, found: np.ndarray) -> float:
    return float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth.tolist(), found.tolist(), strict=True)]))


def apply_history(store: VectorStore) -> None:
    """Adds in batches, deletes, re-adds of deleted ids, and replacements that change vector and category."""
    x = unit(N, 0)
    ids = np.arange(10, 10 + N)
    cats = [CATEGORIES[i % len(CATEGORIES)] for i in range(N)]
    for start in range(0, N, 250):
        store.add(ids[start : start + 250], x[start : start + 250], cats[start : start + 250])
    assert store.remove(np.array([10, 11, 12, 13, 99_999])) == 4
    store.add(np.array([12]), unit(1, 1), ["dress"])  # a deleted id comes back
    store.add(np.arange(100, 140), unit(40, 2), ["shirt"] * 40)  # replaced vectors and categories
    assert store.remove(np.arange(500, 520)) == 20


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[FaissStore, MilvusStore]:
    faiss_store, milvus_store = exact_and_milvus(tmp_path_factory.mktemp("congruence"), "FLAT")
    yield faiss_store, milvus_store
    milvus_store.close()


def test_milvus_store_implements_the_protocol(pair):
    assert isinstance(pair[1], VectorStore)


def test_membership_agrees(pair):
    faiss_store, milvus_store = pair
    assert len(faiss_store) == len(milvus_store) == N - 4 + 1 - 20
    assert np.array_equal(faiss_store.ids(), milvus_store.ids())
    assert faiss_store.category_counts() == milvus_store.category_counts()


def test_exact_top10_ids_agree(pair):
    faiss_store, milvus_store = pair
    queries = unit(50, 7)
    f_scores, f_ids = faiss_store.search(queries, 10)
    m_scores, m_ids = milvus_store.search(queries, 10)
    assert np.array_equal(f_ids, m_ids)
    assert np.allclose(f_scores, m_scores, atol=1e-5)


@pytest.mark.parametrize("category", CATEGORIES[:3])
def test_filtered_search_agrees_and_returns_only_that_category(pair, category):
    faiss_store, milvus_store = pair
    queries = unit(20, 8)
    _, f_ids = faiss_store.search(queries, 10, category=category)
    _, m_ids = milvus_store.search(queries, 10, category=category)
    assert np.array_equal(f_ids, m_ids)
    expected = {int(i) for i in milvus_store.ids()
                if (i in range(100, 140) and category == "shirt")
                or (i == 12 and category == "dress")
                or (i not in range(100, 140) and i != 12 and CATEGORIES[(i - 10) % len(CATEGORIES)] == category)}
    assert set(m_ids.ravel().tolist()) <= expected


@pytest.mark.parametrize("category", [None, "shirt"])
def test_range_search_agrees(pair, category):
    faiss_store, milvus_store = pair
    queries = unit(N, 0)[[0, 1, 3, 100, 490, 500]]
    # a low threshold on random 64-d vectors yields hundreds of hits per query: more than the first top-k
    for min_score in (0.9, 0.0):
        f_rows = faiss_store.range_search(queries, min_score, category)
        m_rows = milvus_store.range_search(queries, min_score, category)
        for (_, f_ids), (m_scores, m_ids) in zip(f_rows, m_rows, strict=True):
            assert set(f_ids.tolist()) == set(m_ids.tolist())
            assert (m_scores >= min_score).all() and np.all(np.diff(m_scores) <= 1e-6)
    assert max(len(ids) for _, ids in milvus_store.range_search(queries, 0.0)) > 64


def test_deleted_ids_never_return_and_absent_categories_give_padding(pair):
    faiss_store, milvus_store = pair
    x = unit(N, 0)
    deleted = [10, 11, 13, *range(500, 520)]
    _, ids = milvus_store.search(x[[0, 1, 3, 490, 500]], 10)
    assert not set(ids.ravel().tolist()) & set(deleted)
    scores, ids = milvus_store.search(x[:2], 5, category="no such category")
    assert (ids == -1).all() and np.isneginf(scores).all()


def test_padding_when_fewer_items_than_k(tmp_path):
    store = milvus(tmp_path)
    store.add(np.array([1, 2]), unit(2, 0), ["a", "b"])
    scores, ids = store.search(unit(1, 0), 5)
    assert ids[0].tolist()[:2] == [1, 2] and ids[0, 2:].tolist() == [-1, -1, -1]
    assert np.isneginf(scores[0, 2:]).all()
    store.close()


def test_hnsw_recall_against_exact_search(tmp_path):
    """Approximate (HNSW) Milvus search finds >= 99% of FAISS's exact top-10 after the same history."""
    exact, approximate = exact_and_milvus(tmp_path, "HNSW")
    queries = unit(100, 9)
    _, truth = exact.search(queries, 10)
    _, found = approximate.search(queries, 10)
    assert recall_at_10(truth, found) >= 0.99
    assert approximate.describe()["type"] == "milvus:HNSW"
    approximate.close()


def test_persists_across_reopen_and_refuses_another_model(tmp_path):
    store = milvus(tmp_path)
    apply_history(store)
    before = store.search(unit(5, 3), 10, category="shirt")
    store.save()
    assert not store.dirty
    store.close()
    reopened = milvus(tmp_path)
    assert len(reopened) == N - 4 + 1 - 20
    after = reopened.search(unit(5, 3), 10, category="shirt")
    assert np.array_equal(before[1], after[1])
    reopened.close()
    other = IndexManifest("bb@1+head@3", "bb@1", "3" * 64, DIM)
    with pytest.raises(ModelMismatchError, match="reindex"):
        milvus(tmp_path, manifest=other)
    fresh = milvus(tmp_path, manifest=other, fresh=True)
    assert len(fresh) == 0
    fresh.close()


def test_a_collection_not_made_by_lookalike_is_refused(tmp_path):
    from pymilvus import MilvusClient

    client = MilvusClient(str(tmp_path / "milvus.db"))
    client.create_collection("lookalike", dimension=DIM)
    client.close()
    with pytest.raises(IndexCorruptError, match="not made by Lookalike"):
        milvus(tmp_path)


def test_optimize_rebuilds_the_index_when_the_configured_type_changed(tmp_path):
    store = milvus(tmp_path, "FLAT")
    apply_history(store)
    store.close()
    store = milvus(tmp_path, "HNSW")
    assert store.optimize(2**30).key == "milvus:HNSW"
    _, ids = store.search(unit(N, 0)[200:201], 1)
    assert ids[0, 0] == 210
    store.close()


def test_milvus_lite_search_survives_faiss_torch_utils(tmp_path):
    """pytorch-metric-learning imports faiss.contrib.torch_utils, whose NumPy path drops FAISS search params."""
    import faiss.contrib.torch_utils  # noqa: F401

    exact, store = exact_and_milvus(tmp_path, "HNSW")
    store.save(force=True)  # sealed segments are searched through their FAISS index
    queries = unit(20, 11)
    _, truth = exact.search(queries, 10, category="shirt")
    _, found = store.search(queries, 10, category="shirt")
    assert recall_at_10(truth, found) >= 0.99
    store.close()


def test_a_milvus_lite_file_held_by_another_process_is_a_clear_error(tmp_path):
    import subprocess
    import sys

    from lookalike.errors import VectorStoreError

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pymilvus import MilvusClient; "
         f"MilvusClient({str(tmp_path / 'milvus.db')!r}); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(VectorStoreError, match="one process at a time"):
            milvus(tmp_path)
    finally:
        holder.kill()
        holder.wait()


def test_credentials_in_a_server_uri_are_never_shown():
    config = MilvusConfig("http://admin:hunter2@milvus.internal:19530")
    assert config.safe_uri == "http://admin:***@milvus.internal:19530" and not config.is_lite
    assert MilvusConfig("http://milvus:19530").safe_uri == "http://milvus:19530"


def test_an_unreachable_server_is_a_vector_store_error():
    from lookalike.errors import VectorStoreError

    with pytest.raises(VectorStoreError, match="127.0.0.1:9"):
        MilvusStore.open(MilvusConfig("http://127.0.0.1:9", token="u:p"), MANIFEST)


@pytest.fixture
def milvus_server(tmp_path):
    """A Milvus gRPC server on a free port (Milvus Lite's server mode), reached by URL like a real deployment."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "server"),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert server.poll() is None and time.monotonic() < deadline, "the Milvus server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.kill()
    server.wait()


def test_a_milvus_server_by_url_agrees_with_faiss_and_persists(tmp_path, milvus_server, monkeypatch):
    from lookalike.index import milvus_store

    monkeypatch.setattr(milvus_store, "ITERATOR_BATCH", 100)  # several pages
    config = MilvusConfig(milvus_server, token="root:Milvus", collection="catalog", index_type="FLAT")
    exact = FaissStore(tmp_path / "faiss", MANIFEST)
    remote = MilvusStore.open(config, MANIFEST)
    assert not config.is_lite
    for store in (exact, remote):
        apply_history(store)
    remote.close()
    reopened = MilvusStore.open(config, MANIFEST)  # membership paged back with a query iterator
    assert np.array_equal(reopened.ids(), exact.ids())
    assert reopened.category_counts() == exact.category_counts()
    queries = unit(30, 12)
    assert np.array_equal(reopened.search(queries, 10)[1], exact.search(queries, 10)[1])
    assert np.array_equal(reopened.search(queries, 10, "dress")[1], exact.search(queries, 10, "dress")[1])
    assert reopened.describe()["uri"] == milvus_server
    reopened.close()


@pytest.mark.parametrize("share", [0.5, 0.05, 0.005])
def test_attribute_filtered_search_agrees(pair, share):
    """The same filter (the ids an attribute filter matched, some deleted) gives the same top k from both stores."""
    faiss_store, milvus_store = pair
    live = faiss_store.ids()
    rng = np.random.default_rng(int(share * 1000))
    allowed = np.sort(np.concatenate([rng.choice(live, max(2, round(share * len(live))), replace=False), [10, 11]]))
    queries = unit(12, 9)
    expected_k = min(10, len(np.intersect1d(allowed, live)))
    for category in (None, "shirt"):
        f_scores, f_ids = faiss_store.search(queries, 10, category, allowed)
        m_scores, m_ids = milvus_store.search(queries, 10, category, allowed)
        assert np.isin(f_ids[f_ids >= 0], allowed).all() and np.isin(m_ids[m_ids >= 0], allowed).all()
        assert (f_ids == m_ids).all() and np.allclose(f_scores[f_ids >= 0], m_scores[m_ids >= 0], atol=1e-5)
        if category is None:
            assert ((f_ids >= 0).sum(axis=1) == expected_k).all()

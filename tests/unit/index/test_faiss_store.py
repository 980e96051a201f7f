import time
from pathlib import Path

import numpy as np
import pytest

from lookalike import beacon
from lookalike.errors import IndexCorruptError, ModelMismatchError
from lookalike.index import faiss_store, snapshot
from lookalike.index.base import IndexManifest, VectorStore
from lookalike.index.faiss_store import FaissStore

DIM = 16
MANIFEST = IndexManifest("bb@1+head@2", "bb@1", "2" * 64, DIM)


def vectors(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def filled(directory: Path, key: str = "Flat", n: int = 200) -> tuple[FaissStore, np.ndarray]:
    store = FaissStore(directory, MANIFEST, key)
    x = vectors(n)
    store.add(np.arange(1, n + 1), x, ["a" if i % 2 else "b" for i in range(n)])
    return store, x


def test_implements_the_vector_store_protocol(tmp_path):
    assert isinstance(FaissStore(tmp_path, MANIFEST), VectorStore)


@pytest.mark.parametrize("key", ["Flat", "HNSW32"])
def test_nearest_neighbour_of_a_stored_vector_is_itself(tmp_path, key):
    store, x = filled(tmp_path, key)
    scores, ids = store.search(x[:10], 3)
    assert ids[:, 0].tolist() == list(range(1, 11))
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


@pytest.mark.parametrize("key", ["Flat", "HNSW32"])
def test_category_filter_returns_only_that_category(tmp_path, key):
    store, x = filled(tmp_path, key)
    _, ids = store.search(x[:20], 10, category="a")
    assert set(ids.ravel().tolist()) <= set(range(2, 201, 2))  # ids of even rows -> odd index -> "a"
    _, none = store.search(x[:2], 5, category="unknown")
    assert (none == -1).all()


@pytest.mark.parametrize("key", ["Flat", "HNSW32"])
def test_removed_ids_are_never_returned(tmp_path, key):
    store, x = filled(tmp_path, key)
    assert store.remove(np.array([1, 2, 3, 999])) == 3
    assert len(store) == 197
    _, ids = store.search(x[:3], 5)
    assert not set(ids.ravel().tolist()) & {1, 2, 3}
    _, ids = store.search(x[:3], 5, category="b")
    assert not set(ids.ravel().tolist()) & {1, 3}


@pytest.mark.parametrize("key", ["Flat", "HNSW32"])
def test_adding_an_existing_id_replaces_its_vector(tmp_path, key):
    store, x = filled(tmp_path, key)
    store.add(np.array([5]), x[50:51], ["a"])
    assert len(store) == 200
    _, ids = store.search(x[50:51], 2)
    assert set(ids[0].tolist()) == {5, 51}
    _, ids = store.search(x[4:5], 1)
    assert ids[0, 0] != 5


@pytest.mark.parametrize("key", ["Flat", "HNSW32"])
def test_save_load_round_trip_keeps_ids_results_and_deletes(tmp_path, key):
    store, x = filled(tmp_path, key)
    store.remove(np.array([7]))
    before = store.search(x[:20], 5, category="a")
    store.save()
    loaded = FaissStore.load(tmp_path, MANIFEST)
    assert loaded.key == key
    assert len(loaded) == 199
    assert np.array_equal(loaded.ids(), store.ids())
    after = loaded.search(x[:20], 5, category="a")
    assert np.array_equal(before[1], after[1])
    assert loaded.category_counts() == store.category_counts()


def test_index_built_by_another_model_is_refused(tmp_path):
    store, _ = filled(tmp_path)
    store.save()
    other = IndexManifest("bb@1+head@OTHER", "bb@1", "3" * 64, DIM)
    with pytest.raises(ModelMismatchError, match="lookalike ingest --reindex"):
        FaissStore.load(tmp_path, other)


def test_corrupt_index_file_is_detected(tmp_path):
    store, _ = filled(tmp_path)
    store.save()
    index_file = snapshot.current_generation(tmp_path) / "index.faiss"
    data = index_file.read_bytes()
    index_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorruptError, match="corrupt or truncated"):
        FaissStore.load(tmp_path, MANIFEST)


def test_crash_during_save_leaves_previous_version_loadable(tmp_path, monkeypatch):
    store, x = filled(tmp_path)
    store.save()
    store.add(np.array([500]), x[:1], ["a"])

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(snapshot, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save()
    monkeypatch.undo()
    loaded = FaissStore.load(tmp_path, MANIFEST)
    assert len(loaded) == 200 and 500 not in loaded.ids()
    store.save()  # the next save cleans the torn temporary folder up
    assert not list(tmp_path.glob(".tmp-*"))
    assert 500 in FaissStore.load(tmp_path, MANIFEST).ids()


def test_optimize_switches_index_type_by_size(tmp_path, monkeypatch):
    from lookalike.index import choose

    store, x = filled(tmp_path, "Flat", n=300)
    monkeypatch.setattr(choose, "EXACT_MAX_ITEMS", 100)  # as if 300 items were a large catalog
    choice = store.optimize(memory_budget_bytes=2**30)
    assert choice.key != "Flat" and store.key == choice.key
    assert len(store) == 300
    _, ids = store.search(x[:5], 1)
    assert (ids[:, 0] >= 1).all()


def test_bad_input_is_refused(tmp_path):
    store = FaissStore(tmp_path, MANIFEST)
    with pytest.raises(ValueError):
        store.add(np.array([1, 1]), vectors(2), ["a", "a"])
    with pytest.raises(ValueError):
        store.add(np.array([1]), vectors(1)[:, :8], ["a"])
    scores, ids = store.search(vectors(1), 3)
    assert (ids == -1).all()


def test_filtered_search_still_works_after_faiss_torch_utils_is_imported(tmp_path):
    import faiss.contrib.torch_utils  # noqa: F401 - pytorch-metric-learning imports it and patches Index.search

    for key in ("Flat", "HNSW32"):
        store, x = filled(tmp_path / key, key)
        _, ids = store.search(x[:5], 3, category="a")
        assert set(ids.ravel().tolist()) <= set(range(2, 201, 2))
        store.add(np.array([5]), x[50:51], ["a"])  # replacing in HNSW rebuilds from reconstructed vectors
        store.optimize(memory_budget_bytes=2**30)  # back to exact: rebuilt from reconstructed vectors
        assert len(store) == 200


@pytest.mark.parametrize("key", ["Flat", "HNSW32", "IVF4,Flat"])
def test_range_search_returns_everything_at_or_above_the_score(tmp_path, key):
    store, x = filled(tmp_path, key)
    near = x[0] + 0.05 * vectors(1, seed=7)[0]
    store.add(np.array([500]), (near / np.linalg.norm(near))[None, :], ["a"])  # a near-copy of item 1
    exact = float(x[0] @ (near / np.linalg.norm(near)))
    rows = store.range_search(x[:2], exact)
    assert rows[0][1].tolist() == [1, 500]  # the item itself, then its near-copy (the score itself counts)
    assert rows[0][0][0] >= rows[0][0][1] >= exact - 1e-6
    assert rows[1][1].tolist() == [2]
    assert store.range_search(x[:1], exact, category="b")[0][1].tolist() == [1]  # item 1 is "b"; 500 is "a"
    assert store.range_search(x[:1], 0.5, category="gowns")[0][1].size == 0
    store.remove(np.array([500]))
    assert store.range_search(x[:1], exact)[0][1].tolist() == [1]  # deleted (or tombstoned) ids never return
    assert len(store.range_search(np.zeros((0, DIM), np.float32), 0.9)) == 0


def test_refresh_picks_up_what_another_process_saved(tmp_path):
    writer, data = filled(tmp_path / "idx")
    writer.save()
    reader = FaissStore.load(tmp_path / "idx", MANIFEST)
    assert not reader.refresh()  # nothing new: a no-op
    writer.add(np.array([500]), data[:1] * -1, ["new"])
    writer.remove(np.array([3]))
    writer.save()
    assert reader.search(-data[:1], 1)[1][0, 0] != 500
    assert reader.refresh()
    assert reader.search(-data[:1], 1)[1][0, 0] == 500
    assert 3 not in reader.ids() and len(reader) == len(writer)
    assert reader.category_counts() == writer.category_counts()
    assert not reader.refresh()


def test_refresh_reads_the_pointer_only_when_a_save_signalled(tmp_path, monkeypatch):
    """A search's refresh costs no file read while nothing was saved (the pointer's beacon, lookalike.beacon); a
    pointer swapped behind Lookalike's back is still seen within RECHECK_S."""
    monkeypatch.setattr(beacon, "RECHECK_S", 0.2)
    writer, data = filled(tmp_path / "idx")
    writer.save()
    reads = []
    monkeypatch.setattr(faiss_store, "pointer_stamp", lambda root: reads.append(root) or snapshot.pointer_stamp(root))
    reader = FaissStore.load(tmp_path / "idx", MANIFEST)
    reads.clear()
    for _ in range(50):
        assert not reader.refresh()
    assert len(reads) == 1
    writer.add(np.array([500]), data[:1] * -1, ["new"])
    writer.save()
    assert reader.refresh() and 500 in reader.ids()
    pointer = tmp_path / "idx" / snapshot.CURRENT
    before = pointer.read_bytes()
    writer.add(np.array([501]), data[:1], ["new"])
    writer.save()
    after = pointer.read_bytes()
    pointer.write_bytes(before)  # back to the generation the reader holds, by hand
    assert not reader.refresh()
    pointer.write_bytes(after)  # forward again, by hand: no signal
    assert not reader.refresh() and 501 not in reader.ids()
    time.sleep(0.25)
    assert reader.refresh() and 501 in reader.ids()


def test_refresh_never_discards_unsaved_changes_or_a_good_index(tmp_path):
    writer, data = filled(tmp_path / "idx")
    writer.save()
    reader = FaissStore.load(tmp_path / "idx", MANIFEST)
    reader.add(np.array([700]), data[:1], ["mine"])  # unsaved in the reader
    writer.remove(np.array([1]))
    writer.save()
    assert not reader.refresh() and 700 in reader.ids()
    reader.save()  # its own save: nothing to pick up afterwards
    assert not reader.refresh()
    writer.remove(np.array([2]))
    writer.save()
    current = snapshot.current_generation(tmp_path / "idx")
    assert current is not None
    (current / "index.faiss").write_bytes(b"damaged")
    assert not reader.refresh()  # a damaged generation is not loaded; what was loaded stays
    assert 700 in reader.ids() and len(reader.search(data[:1], 5)[1][0]) == 5

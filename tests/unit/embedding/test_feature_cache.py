import numpy as np

from lookalike.embedding import feature_cache
from lookalike.embedding.feature_cache import FeatureCache


def test_put_get_and_reload_from_disk(tmp_path):
    cache = FeatureCache(tmp_path, "bb@1", dim=4, flush_every=3)
    feats = np.arange(20, dtype=np.float32).reshape(5, 4)
    cache.put([f"k{i}" for i in range(5)], feats)  # 3 flushed, 2 pending
    found, got = cache.get(["k0", "k4", "missing"])
    assert found.tolist() == [True, True, False]
    assert np.allclose(got[:2], feats[[0, 4]]) and not got[2].any()
    cache.flush()
    reloaded = FeatureCache(tmp_path, "bb@1", dim=4)
    assert len(reloaded) == 5 and "k3" in reloaded
    assert np.allclose(reloaded.get(["k3"])[1], feats[3])


def test_another_backbone_sees_nothing(tmp_path):
    cache = FeatureCache(tmp_path, "bb@1", dim=4)
    cache.put(["k"], np.ones((1, 4)))
    cache.flush()
    assert "k" not in FeatureCache(tmp_path, "bb@2", dim=4)


def test_torn_shard_from_a_crash_is_ignored(tmp_path):
    cache = FeatureCache(tmp_path, "bb@1", dim=4)
    cache.put(["a"], np.ones((1, 4)))
    cache.flush()
    torn = cache.dir / ".tmp-123-9"
    torn.mkdir()
    (torn / "keys.npy").write_bytes(b"partial")
    reloaded = FeatureCache(tmp_path, "bb@1", dim=4)
    assert len(reloaded) == 1 and not torn.exists()


def test_duplicate_keys_are_stored_once(tmp_path):
    cache = FeatureCache(tmp_path, "bb@1", dim=2)
    cache.put(["a"], np.ones((1, 2)))
    cache.flush()
    cache.put(["a"], np.zeros((1, 2)))
    cache.flush()
    assert len(FeatureCache(tmp_path, "bb@1", dim=2)) == 1


def test_a_key_put_but_not_yet_flushed_is_contained_and_stored_once(tmp_path):
    cache = FeatureCache(tmp_path, "bb@1", dim=2)
    cache.put(["a"], np.ones((1, 2)))
    assert "a" in cache and "b" not in cache  # so the featurizer does not decode the same image again
    cache.put(["a", "b", "b"], np.array([[2.0, 2.0], [3.0, 3.0], [4.0, 4.0]]))
    assert len(cache) == 2
    found, got = cache.get(["a", "b"])
    assert found.all() and got.tolist() == [[1.0, 1.0], [3.0, 3.0]]  # the first features put are kept
    cache.flush()
    reloaded = FeatureCache(tmp_path, "bb@1", dim=2)
    assert len(reloaded) == 2 and reloaded.get(["a", "b"])[1].tolist() == [[1.0, 1.0], [3.0, 3.0]]


def shard_count(cache: FeatureCache) -> int:
    return len(list(cache.dir.glob("shard-*")))


def test_shards_of_one_change_each_are_merged_and_every_feature_stays_readable(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_cache, "MAX_SMALL_SHARDS", 4)
    cache = FeatureCache(tmp_path, "bb@1", dim=3, flush_every=8)
    other = FeatureCache(tmp_path, "bb@1", dim=3, flush_every=8)  # another process, opened before
    rng = np.random.default_rng(0)
    features = {f"k{i}": rng.standard_normal(3).astype(np.float16) for i in range(30)}
    for key, vector in features.items():  # as the API's adds: a shard per change
        cache.put([key], vector[None])
        cache.flush()
        assert shard_count(cache) <= 4 + 1 + 30 // 8
    keys = list(features)
    found, got = cache.get(keys)
    assert found.all() and np.array_equal(got, np.stack(list(features.values())).astype(np.float32))
    reopened = FeatureCache(tmp_path, "bb@1", dim=3, flush_every=8)
    assert len(reopened) == 30 and np.array_equal(reopened.get(keys)[1], got)
    other.put(["late"], np.ones((1, 3)))  # its table predates every merge: it writes beside them, losing none
    other.flush()
    assert other.get(["late"])[0].all()
    assert len(FeatureCache(tmp_path, "bb@1", dim=3, flush_every=8)) == 31


def test_opening_a_folder_of_many_small_shards_merges_them(tmp_path, monkeypatch):
    writer = FeatureCache(tmp_path, "bb@1", dim=2, flush_every=100)
    for i in range(12):
        writer.put([f"k{i}"], np.full((1, 2), i))
        writer.flush()
    assert shard_count(writer) == 12  # at most MAX_SMALL_SHARDS small shards are left alone
    held = writer.get(["k3"])[1]
    monkeypatch.setattr(feature_cache, "MAX_SMALL_SHARDS", 4)
    opened = FeatureCache(tmp_path, "bb@1", dim=2, flush_every=100)
    assert shard_count(opened) == 1 and len(opened) == 12
    assert opened.get([f"k{i}" for i in range(12)])[1][:, 0].tolist() == list(range(12))
    assert np.array_equal(writer.get(["k3"])[1], held)  # the writer's memory maps outlive the merged files


def test_a_cache_whose_lock_cannot_be_taken_is_read_as_it_is(tmp_path):
    cache = FeatureCache(tmp_path, "bb@1", dim=2)
    cache.put(["a"], np.ones((1, 2)))
    cache.flush()
    (cache.dir / ".lock").unlink()
    (cache.dir / ".lock").mkdir()  # as a read-only copy would: the lock file cannot be opened
    assert FeatureCache(tmp_path, "bb@1", dim=2).get(["a"])[0].all()


def test_a_copy_holds_every_feature_and_leaves_no_snapshot_behind(tmp_path):
    cache = FeatureCache(tmp_path / "features", "bb@1", dim=2, flush_every=2)
    cache.put(["a", "b", "c"], np.arange(6).reshape(3, 2))
    cache.flush()
    dead = cache.dir / ".snapshot-999999999"  # a backup that died mid-copy
    dead.mkdir()
    feature_cache.copy_cache(tmp_path / "features", tmp_path / "copy")
    assert {p.name[:6] for p in (tmp_path / "copy" / cache.dir.name).iterdir()} == {"shard-"}
    assert not list(cache.dir.glob(".snapshot-*"))
    copied = FeatureCache(tmp_path / "copy", "bb@1", dim=2)
    assert copied.get(["a", "b", "c"])[1].tolist() == [[0, 1], [2, 3], [4, 5]]


def test_a_merge_leaves_an_unreadable_shard_where_it_is(tmp_path, monkeypatch):
    writer = FeatureCache(tmp_path, "bb@1", dim=2, flush_every=100)
    for i in range(6):
        writer.put([f"k{i}"], np.full((1, 2), i))
        writer.flush()
    broken = sorted(writer.dir.glob("shard-*"))[2]
    (broken / "features.npy").write_bytes(b"torn")
    monkeypatch.setattr(feature_cache, "MAX_SMALL_SHARDS", 3)
    opened = FeatureCache(tmp_path, "bb@1", dim=2, flush_every=100)
    assert broken.is_dir() and shard_count(opened) == 2 and len(opened) == 5

import numpy as np

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

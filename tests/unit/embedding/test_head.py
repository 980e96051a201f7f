import numpy as np
import pytest

from lookalike.embedding.head import EmbeddingHead, fit_pca_head, identity_head, l2_normalize
from lookalike.errors import ModelMismatchError


def features(n: int = 300, d: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32) * 3 + 1


def test_identity_head_only_normalizes():
    x = features()
    out = identity_head(64, "bb@1")(x)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.allclose(out, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-6)


def test_pca_head_gives_unit_vectors_of_the_asked_dimension_and_keeps_neighbours():
    x = features()
    head = fit_pca_head(x, "bb@1", dim=32)
    out = head(x)
    assert out.shape == (300, 32) and head.dim == 32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # a slightly perturbed copy still finds its original as nearest neighbour
    noisy = head(x + 0.05 * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32))
    assert ((noisy @ out.T).argmax(axis=1) == np.arange(300)).mean() > 0.95


def test_pca_matches_numpy_projection_on_normalized_features():
    x = features(50, 8)
    head = fit_pca_head(x, "bb@1", dim=3)
    xn = l2_normalize(x)
    centred = xn - xn.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    expected = l2_normalize(centred @ vt[:3].T)
    assert np.allclose(np.abs((head(x) * expected).sum(axis=1)), 1.0, atol=1e-4)


def test_save_load_round_trip_keeps_checksum_and_output(tmp_path):
    head = EmbeddingHead("mlp", 8, "bb@1", [np.ones((8, 4)), np.eye(4, 2)], [np.zeros(4), np.ones(2)],
                         {"epochs": 3})
    head.save(tmp_path / "head.npz")
    loaded = EmbeddingHead.load(tmp_path / "head.npz")
    assert loaded.checksum == head.checksum and loaded.version == head.version
    assert loaded.info == {"epochs": 3}
    x = features(5, 8)
    assert np.allclose(loaded(x), head(x))


def test_checksum_changes_with_the_weights():
    a = fit_pca_head(features(seed=0), "bb@1", 16)
    b = fit_pca_head(features(seed=1), "bb@1", 16)
    assert a.checksum != b.checksum


def test_head_refuses_features_of_another_backbone():
    head = identity_head(8, "bb@1")
    head.check_backbone("bb@1")
    with pytest.raises(ModelMismatchError, match="lookalike train"):
        head.check_backbone("bb@2")


def test_layers_must_chain():
    with pytest.raises(ValueError):
        EmbeddingHead("mlp", 8, "bb", [np.ones((7, 4))], [np.zeros(4)])


def test_mlp_head_computes_the_affine_relu_chain_and_a_row_does_not_depend_on_its_batch():
    rng = np.random.default_rng(2)
    weights = [rng.standard_normal((48, 32)).astype(np.float32), rng.standard_normal((32, 8)).astype(np.float32)]
    biases = [rng.standard_normal(32).astype(np.float32), rng.standard_normal(8).astype(np.float32)]
    head = EmbeddingHead("mlp", 48, "bb@1", weights, biases, threads=1)
    x = features(7, 48)
    expected = l2_normalize(np.maximum(l2_normalize(x) @ weights[0] + biases[0], 0) @ weights[1] + biases[1])
    out = head(x)
    assert out.shape == (7, 8) and np.allclose(out, expected, atol=1e-5)
    assert np.allclose(head(x[3:4]), out[3:4], atol=1e-6)
    assert head(x[:0]).shape == (0, 8)

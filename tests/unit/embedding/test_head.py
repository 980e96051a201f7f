import json

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


def large_head(weight_bits: int, in_dim: int = 1024) -> EmbeddingHead:
    """A head shaped like a trained one (a first layer of at least 2**20 weights, ReLU, a small projection)."""
    rng = np.random.default_rng(3)
    weights = [rng.standard_normal((in_dim, 1024)).astype(np.float32) / 32, rng.standard_normal((1024, 32)) / 32]
    biases = [rng.standard_normal(1024).astype(np.float32) / 8, np.zeros(32, np.float32)]
    return EmbeddingHead("mlp", in_dim, "bb@1", weights, biases, threads=1, weight_bits=weight_bits)


@pytest.mark.parametrize("in_dim", [1024, 1100])  # whole blocks of 128, and a last block padded
def test_a_large_layer_runs_with_8_bit_weights_close_to_float32(in_dim):
    exact, compact = large_head(32, in_dim), large_head(8, in_dim)
    assert compact.quantized_layers == [0] and exact.quantized_layers == []
    x = np.abs(features(400, in_dim, seed=4))
    reference, out = exact(x), compact(x)
    similarity = (reference * out).sum(axis=1)
    assert similarity.min() > 0.9999 and not np.array_equal(reference, out)  # quantized, and hardly moved
    assert ((out @ reference.T).argmax(axis=1) == np.arange(400)).all()  # every row still finds its own
    assert np.allclose(compact(x[3:4]), out[3:4], atol=1e-6)  # a row does not depend on its batch


def test_the_checksum_says_whether_weights_run_in_8_bits_and_a_saved_head_keeps_it(tmp_path):
    assert large_head(8).checksum != large_head(32).checksum
    small = fit_pca_head(features(), "bb@1", 16)  # too small to quantize: the same whatever the setting
    assert small.quantized_layers == [] and small.checksum == EmbeddingHead(
        "pca", 64, "bb@1", small.weights, small.biases, weight_bits=32).checksum
    for head in (large_head(8), large_head(32)):
        head.save(tmp_path / "head.npz")
        loaded = EmbeddingHead.load(tmp_path / "head.npz")
        assert loaded.weight_bits == head.weight_bits and loaded.checksum == head.checksum


def test_a_head_saved_before_8_bit_weights_loads_as_float32_with_its_old_checksum(tmp_path):
    head = large_head(32)
    meta = {"kind": head.kind, "in_dim": head.in_dim, "backbone": head.backbone, "info": {}, "layers": 2}
    np.savez(tmp_path / "old.npz", meta=np.array(json.dumps(meta)), w0=head.weights[0],
             w1=head.weights[1], b0=head.biases[0], b1=head.biases[1])
    loaded = EmbeddingHead.load(tmp_path / "old.npz")
    assert loaded.weight_bits == 32 and loaded.checksum == head.checksum


def test_weight_bits_are_8_or_32():
    with pytest.raises(ValueError, match="weight_bits"):
        large_head(4)

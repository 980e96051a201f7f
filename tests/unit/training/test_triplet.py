"""Triplet head training on small, separable synthetic features."""

import numpy as np
import pytest

from lookalike.embedding.labelled import encode_labels
from lookalike.training.batches import batch_shape
from lookalike.training.triplet import TrainConfig, split_validation, train_head


def clusters(n_per: int = 60, n_labels: int = 4, d: int = 32, noise: float = 1.6, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_labels, d))
    labels = np.repeat(np.arange(n_labels), n_per)
    return (centres[labels] + noise * rng.standard_normal((len(labels), d))).astype(np.float32), labels


def config(**kw) -> TrainConfig:
    return TrainConfig(**{"dim": 8, "hidden": 32, "m_per_class": 8, "batch_size": 32, "max_epochs": 12,
                          "patience": 12, "lr": 3e-3, "val_fraction": 0.25, **kw})


@pytest.mark.parametrize(("miner", "aux"), [("semihard", "none"), ("hard", "none"), ("batch-hard", "none"),
                                           ("semihard", "normalized-softmax")])
def test_loss_goes_down_and_validation_precision_goes_up(miner, aux):
    x, y = clusters()
    result = train_head(x, y, "bb@1", config(miner=miner, aux_loss=aux))
    history = result.history
    assert history[-1].loss < history[0].loss
    assert result.best_val_precision_at_1 >= history[0].val_precision_at_1
    assert result.best_val_precision_at_1 >= 0.8
    out = result.head(x)
    assert out.shape == (240, 8) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    assert result.head.kind == "triplet" and result.head.backbone == "bb@1"


def test_exported_head_matches_the_trained_network(tmp_path):
    import torch

    from lookalike.training.triplet import HeadNet

    net = HeadNet(16, 12, 4, dropout=0.5).eval()
    head = net.to_head("bb", {})
    x = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert np.allclose(head(x), expected, atol=1e-5)


def test_same_seed_same_head():
    x, y = clusters()
    a = train_head(x, y, "bb", config(max_epochs=3))
    b = train_head(x, y, "bb", config(max_epochs=3))
    assert a.head.checksum == b.head.checksum


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path):
    x, y = clusters()
    checkpoint = tmp_path / "head.checkpoint.pt"
    epochs_seen: list[int] = []

    def crash_after_third(stats):
        epochs_seen.append(stats.epoch)
        if stats.epoch == 3:
            raise KeyboardInterrupt

    cfg = config(max_epochs=6, aux_loss="normalized-softmax")
    with pytest.raises(KeyboardInterrupt):
        train_head(x, y, "bb", cfg, checkpoint, crash_after_third)
    assert checkpoint.is_file()
    resumed = train_head(x, y, "bb", cfg, checkpoint, lambda s: epochs_seen.append(s.epoch))
    assert epochs_seen == [1, 2, 3, 4, 5, 6]
    assert [h.epoch for h in resumed.history] == [1, 2, 3, 4, 5, 6]
    uninterrupted = train_head(x, y, "bb", cfg)
    assert resumed.head.checksum == uninterrupted.head.checksum


def test_a_checkpoint_of_another_configuration_is_not_reused(tmp_path):
    x, y = clusters()
    checkpoint = tmp_path / "c.pt"
    train_head(x, y, "bb", config(max_epochs=2), checkpoint)
    seen = []
    train_head(x, y, "bb", config(max_epochs=2, margin=0.3), checkpoint, lambda s: seen.append(s.epoch))
    assert seen == [1, 2]


def test_early_stopping_keeps_the_best_epoch():
    x, y = clusters()
    result = train_head(x, y, "bb", config(max_epochs=40, patience=2, lr=3e-2))
    assert "no improvement" in result.stopped or len(result.history) == 40
    assert result.best_val_precision_at_1 == max(h.val_precision_at_1 for h in result.history)


def test_helpers():
    assert encode_labels(["b", "a", "b"]).tolist() == [1, 0, 1]
    with pytest.raises(ValueError):
        encode_labels(["a", None])
    train, val = split_validation(np.array([0] * 10 + [1] * 10 + [2]), 0.2, seed=0)
    assert len(val) == 4 and 20 in train and not set(train) & set(val)
    assert batch_shape(10, 16, 512) == (51, 510)
    assert batch_shape(1000, 4, 256) == (4, 256)
    with pytest.raises(ValueError):
        batch_shape(1, 4, 32)


@pytest.mark.parametrize("bf16", [False, True])
def test_float32_and_bfloat16_training_both_learn_with_a_small_validation_gallery(bf16):
    x, y = clusters()
    result = train_head(x, y, "bb", config(bf16=bf16, val_gallery=40))
    assert result.best_val_precision_at_1 >= 0.7  # chance is 0.25; 40 gallery rows make it a noisy figure
    assert np.allclose(np.linalg.norm(result.head(x), axis=1), 1, atol=1e-5)


def test_the_trained_head_runs_its_weights_as_configured():
    x, y = clusters()
    assert train_head(x, y, "bb", config(max_epochs=1)).head.weight_bits == 8
    assert train_head(x, y, "bb", config(max_epochs=1, weight_bits=32)).head.weight_bits == 32

"""Fine-tuning the backbone's last blocks: the trunk/tail split is exact, only the tail learns, and the saved weights
export to an ONNX backbone that computes what the fine-tuned PyTorch network computes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from lookalike.backbone.models import RANDOM_WEIGHTS
from lookalike.backbone.runtime import load_backbone
from lookalike.errors import BackboneError
from lookalike.training.finetune import (
    TrainableTail,
    backbone_weights_files,
    fine_tunable_backbone,
    save_backbone_weights,
)
from lookalike.training.triplet import TrainConfig, train_head

from imagegen import CATEGORIES, make_image

NAME = "efficientnet-lite0-multiscale"


def test_trunk_then_tail_gives_the_backbone_features():
    net = fine_tunable_backbone(NAME, RANDOM_WEIGHTS, 1).eval()
    images = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        whole = net(images)
        for start in (0, 3, 11, 15, 16):
            assert torch.allclose(net.tail(*net.trunk(images, start), start), whole, atol=1e-5)


@pytest.mark.parametrize("blocks", [16, 11, 1])  # 16: no stage pools yet at the split; 11: no grid pools
def test_the_stored_trunk_outputs_give_the_backbone_features_through_the_tail(blocks):
    net = fine_tunable_backbone(NAME, RANDOM_WEIGHTS, blocks)
    images = np.random.default_rng(0).standard_normal((5, 3, 112, 112)).astype(np.float32)
    tail = TrainableTail(net, blocks, lambda size: (images[i : i + size] for i in range(0, 5, size)), 5, 112,
                         batch_size=2)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(images))
        got = tail.eval()(torch.tensor([4, 0, 2]))
    assert torch.allclose(got, expected[[4, 0, 2]], atol=2e-3 * float(expected.abs().max()))


def test_fine_tuning_needs_a_multiscale_efficientnet_and_a_block_count_it_has():
    with pytest.raises(BackboneError, match="multi-scale EfficientNet-Lite"):
        fine_tunable_backbone("efficientnet-lite0", RANDOM_WEIGHTS, 1)
    with pytest.raises(BackboneError, match="between 1 and 16"):
        fine_tunable_backbone(NAME, RANDOM_WEIGHTS, 17)


def test_only_the_tail_learns_and_the_export_computes_the_fine_tuned_features(tmp_path: Path, models_dir: Path):
    base = load_backbone(NAME, models_dir)
    labels = np.repeat(np.arange(len(CATEGORIES)), 16)
    prepared = np.stack([base.prepare(make_image(CATEGORIES[label], i)) for i, label in enumerate(labels)])
    backbone = fine_tunable_backbone(NAME, None, 2)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}

    def inputs(size: int):
        return (prepared[i : i + size] for i in range(0, len(prepared), size))

    tail = TrainableTail(backbone, 2, inputs, len(prepared), 112, batch_size=20)
    config = TrainConfig(dim=8, hidden=32, m_per_class=8, batch_size=24, max_epochs=4, patience=4, lr=3e-3,
                         tail_lr=1e-3, val_fraction=0.25, fine_tune_blocks=2, bf16=False)
    result = train_head(base(prepared), labels, "bb@1", config, tail=tail)

    assert result.history[-1].loss < result.history[0].loss
    changed = {k for k, v in backbone.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith(("net._blocks.14.", "net._blocks.15.", "net._conv_head", "net._bn1"))
                           for k in changed)

    weights = save_backbone_weights(backbone, tmp_path / "heads", NAME)
    assert backbone_weights_files(tmp_path / "heads", NAME) == [weights]
    tuned = load_backbone(NAME, tmp_path / "models", str(weights))
    assert tuned.fingerprint != base.fingerprint
    with torch.no_grad():
        expected = backbone.eval()(torch.from_numpy(prepared[:6])).numpy()
    assert np.allclose(tuned(prepared[:6]), expected, atol=1e-3 * np.abs(expected).max())
    assert not np.allclose(base(prepared[:6]), expected, atol=1e-3 * np.abs(expected).max())

    exported = next((tmp_path / "models").rglob("backbone.onnx"))
    stamp = exported.stat().st_mtime_ns
    moved = tmp_path / "elsewhere" / weights.name  # a home mounted at another path keeps its export
    moved.parent.mkdir()
    weights.rename(moved)
    assert load_backbone(NAME, tmp_path / "models", str(moved)).fingerprint == tuned.fingerprint
    assert exported.stat().st_mtime_ns == stamp

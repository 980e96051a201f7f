"""One-time export of a registered backbone to ONNX, with a JSON sidecar describing it."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from lookalike.backbone.registry import BackboneSpec, weights_identity
from lookalike.errors import BackboneError
from lookalike.hashing import file_sha256
from lookalike.io.files import atomic_path, write_atomically

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

OPSET = 17


def export_onnx(spec: BackboneSpec, dest: Path, weights: str | None = None) -> Path:
    """Export ``spec`` to ``dest`` (ONNX, dynamic batch) and write ``dest.json``; both atomically.

    The exported graph is checked against PyTorch eager on a random batch before it is kept.
    """
    try:
        import torch
    except ImportError as exc:
        raise BackboneError(f"no exported model at {dest}, and exporting {spec.name} needs the training stack: "
                            "pip install 'lookalike[train]', or mount an exported models folder") from exc

    if spec.build is None:
        raise BackboneError(f"{spec.name} is not exportable: it is already an ONNX model")
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # some model packages print while loading weights
        model = spec.build(weights).eval()
    size = spec.preprocessing.input_size
    sample = torch.randn(2, 3, size, size)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        to_onnx(model, size, ["features"], tmp)
        with torch.no_grad():
            expected = model(sample).numpy()
        _check_export(tmp, sample.numpy(), expected)
    sidecar = {
        "name": spec.name,
        "num_features": int(expected.shape[1]),
        "weights": weights_identity(weights),
        "sha256": file_sha256(dest),
        **spec.preprocessing.to_dict(),
    }
    write_atomically(dest.with_name(dest.name + ".json"), json.dumps(sidecar, indent=2))
    log.info("exported %s to %s in %.1fs", spec.name, dest, time.perf_counter() - started)
    return dest


def to_onnx(model: torch.nn.Module, size: int, outputs: list[str], target: Path | IO[bytes]) -> None:
    """Write ``model`` (images (N, 3, size, size) -> ``outputs``, each (N, ...)) as ONNX with a dynamic batch."""
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's constant-folding chatter
        torch.onnx.export(
            model,
            (torch.randn(2, 3, size, size),),
            target if not isinstance(target, Path) else str(target),  # type: ignore[arg-type]
            input_names=["images"],
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in ["images", *outputs]},
            opset_version=OPSET,
            dynamo=False,
        )


def _check_export(path: Path, sample: np.ndarray, expected: np.ndarray) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": sample})[0]
    scale = float(np.abs(expected).max()) or 1.0
    err = float(np.abs(got - expected).max()) / scale
    if err > 1e-3:
        path.unlink(missing_ok=True)
        raise BackboneError(f"ONNX export diverges from PyTorch (relative error {err:.2e})")

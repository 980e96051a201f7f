"""Embedding heads: backbone features -> L2-normalized embedding.

Every head is a stack of affine layers with ReLU between them (identity = no layers; PCA = one layer;
the triplet-trained head = several). That one representation runs in NumPy at query time, is saved
as ``.npz``, and has a checksum that names its exact weights.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.errors import ModelMismatchError


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)


@dataclass
class EmbeddingHead:
    """L2-normalized features -> affine layers (weight (in, out), bias (out,)), ReLU between -> L2-normalized."""

    kind: str
    in_dim: int
    backbone: str  # fingerprint of the backbone whose features this head expects
    weights: list[np.ndarray] = field(default_factory=list)
    biases: list[np.ndarray] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # training summary, free-form

    def __post_init__(self) -> None:
        self.weights = [np.ascontiguousarray(w, dtype=np.float32) for w in self.weights]
        self.biases = [np.ascontiguousarray(b, dtype=np.float32) for b in self.biases]
        dim = self.in_dim
        for w, b in zip(self.weights, self.biases, strict=True):
            if w.shape[0] != dim or b.shape != (w.shape[1],):
                raise ValueError(f"layer shapes do not chain: {w.shape}, {b.shape} after dim {dim}")
            dim = w.shape[1]
        self.dim = dim
        digest = hashlib.sha256(f"{self.kind}:{self.in_dim}".encode())
        for array in (*self.weights, *self.biases):
            digest.update(array.tobytes())
        self.checksum = digest.hexdigest()

    @property
    def version(self) -> str:
        """Short name of these exact weights, e.g. ``pca-128@1a2b3c4d5e6f``."""
        return f"{self.kind}-{self.dim}@{self.checksum[:12]}"

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = l2_normalize(features)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w + b
            if i < last:
                np.maximum(x, 0.0, out=x)
        return l2_normalize(x)

    def check_backbone(self, fingerprint: str) -> None:
        if self.backbone != fingerprint:
            raise ModelMismatchError(
                f"the embedding head was trained on features of {self.backbone}, "
                f"but the backbone loaded is {fingerprint}; retrain with `lookalike train`"
            )

    def save(self, path: Path) -> None:
        """Write atomically as ``.npz``."""
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)} | {f"b{i}": b for i, b in enumerate(self.biases)}
        meta = {"kind": self.kind, "in_dim": self.in_dim, "backbone": self.backbone, "info": self.info,
                "layers": len(self.weights)}
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> EmbeddingHead:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            layers = int(meta["layers"])
            weights = [data[f"w{i}"] for i in range(layers)]
            biases = [data[f"b{i}"] for i in range(layers)]
        return cls(meta["kind"], int(meta["in_dim"]), meta["backbone"], weights, biases, meta.get("info", {}))


def identity_head(in_dim: int, backbone: str) -> EmbeddingHead:
    """The untrained head: normalized backbone features."""
    return EmbeddingHead("identity", in_dim, backbone)


def fit_pca_head(features: np.ndarray, backbone: str, dim: int = 128, whiten: bool = False) -> EmbeddingHead:
    """PCA of L2-normalized features (what every head receives) to ``dim`` components, as a one-layer head."""
    x = l2_normalize(features).astype(np.float64)
    if len(x) < 2:
        raise ValueError("PCA needs at least 2 samples")
    dim = min(dim, x.shape[1], len(x))
    mean = x.mean(axis=0)
    _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
    components = vt[:dim].T  # (in, dim)
    if whiten:
        components = components / np.maximum(singular[:dim] / np.sqrt(len(x) - 1), 1e-6)
    return EmbeddingHead("pca", x.shape[1], backbone, [components.astype(np.float32)],
                         [(-mean @ components).astype(np.float32)], {"samples": len(x), "whiten": whiten})

"""Embedding heads: backbone features -> L2-normalized embedding.

Every head is a stack of affine layers with ReLU between them (identity = no layers; PCA = one layer;
the triplet-trained head = several). That one representation is saved as ``.npz``, has a checksum that names
its exact weights, and runs as a small ONNX Runtime graph: for the few rows of a query batch, ONNX Runtime's
matrix product is 4x faster than NumPy's BLAS, which packs the whole weight matrix per call (measured on the
demo head's 4864x1024 first layer, 2 to 4 rows: 0.5-0.7 ms against 2.4-2.5 ms).

A large layer reads its whole weight matrix for every query batch. With ``weight_bits`` 8 (the default for heads
made now; heads saved before stay in float32), layers of at least ``QUANTIZE_FROM`` weights run with 8-bit
weights, one float32 scale per ``QUANTIZE_BLOCK`` of them (ONNX Runtime's ``MatMulNBits``): a quarter of the bytes
to read, embeddings within 1e-4 cosine of float32 and the same retrieval figures (BENCHMARKS.md). The checksum
says when a head runs so, since its embeddings differ from float32's in the last digits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.errors import ModelMismatchError
from lookalike.inference import cpu_session
from lookalike.io.files import atomic_write

if TYPE_CHECKING:
    import onnxruntime as ort


BACKBONE_WEIGHTS_INFO = "backbone_weights"  # info entry of a head trained with a fine-tuned backbone: its weights file
WEIGHT_BITS = (8, 32)
QUANTIZE_FROM = 2**20  # weights of a layer from which it runs with 8-bit weights (when the head's weight_bits is 8)
QUANTIZE_BLOCK = 128  # weights per scale (of one output, along the input): beside 32 and 64, as exact and fastest


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
    threads: int = field(default=0, compare=False, repr=False)  # ONNX Runtime threads of __call__; 0: all cores
    weight_bits: int = 8  # 8: large layers run with 8-bit weights (see the module docstring); 32: all in float32

    def __post_init__(self) -> None:
        self.weights = [np.ascontiguousarray(w, dtype=np.float32) for w in self.weights]
        self.biases = [np.ascontiguousarray(b, dtype=np.float32) for b in self.biases]
        if self.weight_bits not in WEIGHT_BITS:
            raise ValueError(f"weight_bits must be one of {WEIGHT_BITS}, got {self.weight_bits}")
        dim = self.in_dim
        for w, b in zip(self.weights, self.biases, strict=True):
            if w.shape[0] != dim or b.shape != (w.shape[1],):
                raise ValueError(f"layer shapes do not chain: {w.shape}, {b.shape} after dim {dim}")
            dim = w.shape[1]
        self.dim = dim
        digest = hashlib.sha256(f"{self.kind}:{self.in_dim}".encode())
        for array in (*self.weights, *self.biases):
            digest.update(array.tobytes())
        if self.quantized_layers:
            digest.update(f":8-bit weights in blocks of {QUANTIZE_BLOCK} from {QUANTIZE_FROM}".encode())
        self.checksum = digest.hexdigest()

    @property
    def quantized_layers(self) -> list[int]:
        """The layers that run with 8-bit weights."""
        if self.weight_bits == 32:
            return []
        return [i for i, w in enumerate(self.weights) if w.size >= QUANTIZE_FROM]

    @property
    def version(self) -> str:
        """Short name of these exact weights, e.g. ``pca-128@1a2b3c4d5e6f``."""
        return f"{self.kind}-{self.dim}@{self.checksum[:12]}"

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = l2_normalize(features)
        if not self.weights:
            return x
        if len(x) == 0:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalize(self._session.run(None, {"x": x})[0])

    def onnx_model(self) -> bytes:
        """The serialized ONNX model this head runs (input "x": normalized features; output: the layers' result,
        before the final normalization)."""
        return _affine_relu_graph(self.weights, self.biases, self.quantized_layers)

    @cached_property
    def _session(self) -> ort.InferenceSession:
        return cpu_session(self.onnx_model(), self.threads)

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
                "layers": len(self.weights), "weight_bits": self.weight_bits}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as file:
            np.savez(file, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]

    @staticmethod
    def read_meta(path: Path) -> dict:
        """A saved head's description (kind, backbone fingerprint, training summary...), without its weights."""
        with np.load(path, allow_pickle=False) as data:
            return dict(json.loads(str(data["meta"])))

    @staticmethod
    def read_info(path: Path) -> dict:
        """The training summary of a saved head, without loading its weights."""
        return dict(EmbeddingHead.read_meta(path).get("info", {}))

    @classmethod
    def load(cls, path: Path, threads: int = 0) -> EmbeddingHead:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            layers = int(meta["layers"])
            weights = [data[f"w{i}"] for i in range(layers)]
            biases = [data[f"b{i}"] for i in range(layers)]
        return cls(meta["kind"], int(meta["in_dim"]), meta["backbone"], weights, biases, meta.get("info", {}), threads,
                   int(meta.get("weight_bits", 32)))  # saved before 8-bit weights: float32


def _affine_relu_graph(weights: list[np.ndarray], biases: list[np.ndarray], quantized: Sequence[int] = ()) -> bytes:
    """The serialized ONNX model of ``x @ w + b`` per layer with ReLU between layers (input "x", one output); the
    ``quantized`` layers with 8-bit weights (``MatMulNBits``, ONNX Runtime's operator for weights stored so)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers, x = [], [], "x"
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        initializers.append(numpy_helper.from_array(b, f"b{i}"))
        if i in quantized:
            packed, scales = _blockwise_8bit(w)
            initializers += [numpy_helper.from_array(packed, f"w{i}"), numpy_helper.from_array(scales, f"s{i}")]
            # accuracy_level 4: the rows too in 8 bits per block while multiplying (ONNX Runtime's fastest path)
            nodes.append(helper.make_node("MatMulNBits", [x, f"w{i}", f"s{i}"], [f"matmul{i}"], domain="com.microsoft",
                                          K=w.shape[0], N=w.shape[1], bits=8, block_size=QUANTIZE_BLOCK,
                                          accuracy_level=4))
        else:
            initializers.append(numpy_helper.from_array(w, f"w{i}"))
            nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"matmul{i}"]))
        nodes.append(helper.make_node("Add", [f"matmul{i}", f"b{i}"], [f"affine{i}"]))
        x = f"affine{i}"
        if i < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [x], [f"relu{i}"]))
            x = f"relu{i}"
    graph = helper.make_graph(
        nodes, "embedding_head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", weights[0].shape[0]])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["n", weights[-1].shape[1]])],
        initializers,
    )
    # IR 8 / opset 17: what every ONNX Runtime this project accepts reads; MatMulNBits is in ONNX Runtime's own domain
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8).SerializeToString()


def _blockwise_8bit(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A (K, N) float weight as ``MatMulNBits`` takes it: per output, its K weights in blocks of QUANTIZE_BLOCK
    (the last padded with zeros), each block scaled to -127..127 by its largest magnitude and stored plus 128 (the
    operator's zero point when none is given). Returns uint8 (N, blocks, QUANTIZE_BLOCK) and the scales, float32
    (N * blocks,)."""
    k, n = weight.shape
    blocks = -(-k // QUANTIZE_BLOCK)
    columns = np.zeros((n, blocks * QUANTIZE_BLOCK), np.float32)
    columns[:, :k] = weight.T
    columns = columns.reshape(n, blocks, QUANTIZE_BLOCK)
    scales = np.abs(columns).max(axis=2) / 127
    scales[scales == 0] = 1.0
    levels = np.clip(np.rint(columns / scales[..., None]), -127, 127) + 128
    return levels.astype(np.uint8), scales.astype(np.float32).reshape(-1)


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

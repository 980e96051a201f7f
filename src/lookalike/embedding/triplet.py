"""Training the embedding head as a triplet network with hard-negative mining (pytorch-metric-learning).

Frozen backbone features in, a small MLP (features -> hidden -> dim, L2-normalized) out. Batches hold
``m_per_class`` examples of each label (MPerClassSampler), the miner picks the hard or semi-hard triplets
inside each batch, and TripletMarginLoss pulls positives together and pushes negatives past the margin.
A held-out validation split measures precision@1 (against a sample of the training rows) after every epoch;
training stops early when it stops improving, keeps the best weights, and checkpoints every epoch so an
interrupted run resumes. The MLP runs under bfloat16 autocast where the hardware has fast bfloat16 (about 2.4x
the float32 matmul speed on two Zen 4 cores); the exported head is float32 either way.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from pytorch_metric_learning import distances, losses, miners, samplers
from torch import nn

from lookalike.embedding.head import EmbeddingHead
from lookalike.evaluation.metrics import knn

log = logging.getLogger(__name__)

Miner = Literal["semihard", "hard", "batch-hard"]
AuxLoss = Literal["none", "normalized-softmax"]


@dataclass
class TrainConfig:
    """Hyper-parameters of head training (defaults measured on Fashion-MNIST, see BENCHMARKS.md)."""

    dim: int = 128
    hidden: int = 1024
    margin: float = 0.1
    miner: Miner = "batch-hard"
    aux_loss: AuxLoss = "normalized-softmax"  # a proxy loss beside the triplet loss: +1-2 points precision@1
    aux_weight: float = 1.0
    m_per_class: int = 32
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.1
    max_epochs: int = 10
    patience: int = 2
    val_fraction: float = 0.1
    val_gallery: int = 20_000  # validation queries search a sample of this many training rows: a cheap epoch end
    seed: int = 0
    max_seconds: float | None = None  # an optional wall-clock cap; results then depend on the machine's speed
    device: str = "cpu"
    fine_tune_blocks: int = 0  # > 0: train_head is given those last backbone blocks to train too (finetune.py)
    tail_lr: float = 1e-3  # their learning rate (1e-3 beat 1e-4 for the last stage on Fashion-MNIST, BENCHMARKS.md)
    bf16: bool | None = None  # bfloat16 autocast while training; None: where it is fast (see bf16_is_fast)


@dataclass
class EpochStats:
    epoch: int
    loss: float
    val_precision_at_1: float
    seconds: float
    mined_triplets: float = 0.0


@dataclass
class TrainResult:
    head: EmbeddingHead
    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    best_val_precision_at_1: float = 0.0
    seconds: float = 0.0
    stopped: str = ""


class HeadNet(nn.Module):
    """normalize -> standardize -> Linear -> BatchNorm -> ReLU -> Dropout -> Linear -> normalize.

    At export the standardization and the BatchNorm are folded into the first Linear layer, so the saved
    :class:`EmbeddingHead` is two affine layers with a ReLU between: the graph ingest and queries run.
    """

    def __init__(self, in_dim: int, hidden: int, dim: int, dropout: float,
                 mean: np.ndarray | None = None, std: np.ndarray | None = None) -> None:
        super().__init__()
        mean = mean if mean is not None else np.zeros(in_dim)
        std = std if std is not None else np.ones(in_dim)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.fc1 = nn.Linear(in_dim, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, dim)

    mean: torch.Tensor
    std: torch.Tensor

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.embed(self.standardize(features))

    def standardize(self, features: torch.Tensor) -> torch.Tensor:
        """The fixed first step; training applies it to its features once rather than to every batch."""
        return (nn.functional.normalize(features, dim=1) - self.mean) / self.std

    def embed(self, standardized: torch.Tensor) -> torch.Tensor:
        x = self.fc2(self.drop(torch.relu(self.bn(self.fc1(standardized)))))
        return nn.functional.normalize(x.float(), dim=1)  # float32 even under autocast

    def to_head(self, backbone: str, info: dict) -> EmbeddingHead:
        running_mean = cast(torch.Tensor, self.bn.running_mean).double()
        running_var = cast(torch.Tensor, self.bn.running_var).double()
        with torch.no_grad():
            w1, b1 = self.fc1.weight.double(), self.fc1.bias.double()
            mean, std = self.mean.double(), self.std.double()
            scale = self.bn.weight.double() / torch.sqrt(running_var + self.bn.eps)
            weight = scale[:, None] * w1 / std[None, :]
            bias = scale * (b1 - w1 @ (mean / std) - running_mean) + self.bn.bias.double()
            return EmbeddingHead(
                "triplet", self.fc1.in_features, backbone,
                [weight.T.float().cpu().numpy(), self.fc2.weight.T.cpu().numpy()],
                [bias.float().cpu().numpy(), self.fc2.bias.cpu().numpy()], info,
            )


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bfloat16 matmuls run natively here: a CUDA GPU that has them, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def feature_statistics(normalized: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and spread of L2-normalized features; tiny spreads are floored so a dimension that
    never varies in training cannot blow up on a query where it does."""
    std_t, mean_t = torch.std_mean(normalized, dim=0, correction=0)
    mean, std = mean_t.cpu().numpy(), std_t.cpu().numpy()
    return mean.astype(np.float32), np.maximum(std, 0.1 * float(np.median(std)) + 1e-12).astype(np.float32)


def encode_labels(labels: list[str | None]) -> np.ndarray:
    """Integer codes of string labels (None is not allowed: every training item needs a label)."""
    if any(label is None for label in labels):
        raise ValueError("every training item needs a category or an item_id")
    _, codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    return codes.astype(np.int64)


def split_validation(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train rows, validation rows); labels with a single example stay in training."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(len(rows) * fraction)) if len(rows) > 1 else 0
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def batch_shape(n_labels: int, m_per_class: int, batch_size: int) -> tuple[int, int]:
    """(m, batch size) for an m-per-class sampler: with few labels, more examples of each fill the batch."""
    if n_labels < 2:
        raise ValueError("training needs at least two different labels")
    m = max(m_per_class, batch_size // n_labels)
    return m, m * min(n_labels, max(batch_size // m, 2))


def _precision_at_1(models: list[nn.Module], embed: Callable[[torch.Tensor], torch.Tensor], queries: np.ndarray,
                    gallery: np.ndarray, labels: np.ndarray, device: torch.device, bf16: bool) -> float:
    """Precision@1 of the ``queries`` rows against the ``gallery`` rows, with ``models`` in inference mode."""
    for model in models:
        model.eval()
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        q, g = (torch.cat([embed(chunk) for chunk in torch.from_numpy(rows).to(device).split(8192)]).cpu().numpy()
                for rows in (queries, gallery))
    for model in models:
        model.train()
    _, idx = knn(q, g, 1)
    return float((labels[gallery][idx[:, 0]] == labels[queries]).mean())


def train_head(
    features: np.ndarray,
    labels: np.ndarray,
    backbone: str,
    config: TrainConfig,
    checkpoint: Path | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    tail: nn.Module | None = None,
) -> TrainResult:
    """Train the triplet head on (features, integer labels); resumes from ``checkpoint`` when it exists.

    With a ``tail`` (training rows -> backbone features, see :class:`~lookalike.embedding.finetune.TrainableTail`)
    its trainable weights learn too, and ``features`` (the frozen backbone's) only set the standardization.
    """
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    device = torch.device(config.device)
    train_rows, val_rows = split_validation(labels, config.val_fraction, config.seed)
    y = torch.from_numpy(labels).to(device)
    x = nn.functional.normalize(torch.from_numpy(np.asarray(features, np.float32)).to(device), dim=1)
    mean, std = feature_statistics(x[train_rows])
    net = HeadNet(features.shape[1], config.hidden, config.dim, config.dropout, mean, std).to(device)
    x.sub_(net.mean).div_(net.std)  # net.standardize, once for all epochs rather than for every batch
    if tail is not None:
        tail.to(device)
    models: list[nn.Module] = [net] if tail is None else [net, tail]

    def embed(rows: torch.Tensor) -> torch.Tensor:
        return net.embed(x[rows] if tail is None else net.standardize(tail(rows)))
    loss_fn = losses.TripletMarginLoss(margin=config.margin, distance=distances.CosineSimilarity())
    aux = (losses.NormalizedSoftmaxLoss(int(labels.max()) + 1, config.dim, temperature=0.05).to(device)
           if config.aux_loss == "normalized-softmax" else None)
    groups: list[dict[str, Any]] = [{"params": net.parameters(), "lr": config.lr, "weight_decay": config.weight_decay}]
    if aux is not None:  # the class proxies learn faster than the network
        groups.append({"params": aux.parameters(), "lr": config.lr * 10, "weight_decay": 0.0})
    if tail is not None:
        groups.append({"params": [p for p in tail.parameters() if p.requires_grad], "lr": config.tail_lr,
                       "weight_decay": config.weight_decay})
    optimizer = torch.optim.AdamW(groups, fused=True)  # fused: a fifth of the step time of the for-loop version
    bf16 = bf16_is_fast(device) if config.bf16 is None else config.bf16
    miner = (miners.BatchHardMiner(distance=distances.CosineSimilarity()) if config.miner == "batch-hard"
             else miners.TripletMarginMiner(margin=config.margin, type_of_triplets=config.miner,
                                            distance=distances.CosineSimilarity()))
    m, batch_size = batch_shape(len(np.unique(labels[train_rows])), config.m_per_class, config.batch_size)
    steps_per_epoch = max(len(train_rows), batch_size) // batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in groups], pct_start=0.1,
                                                    total_steps=max(20, config.max_epochs * steps_per_epoch))
    result = TrainResult(head=net.to_head(backbone, {}))
    best_state = _snapshot(models)
    bad_epochs, start_epoch = 0, 0
    config_key = json.dumps(asdict(config), sort_keys=True)
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        if saved.get("config") == config_key and saved.get("n") == len(labels):
            _restore(models, saved["model"])
            if aux is not None:
                aux.load_state_dict(saved["aux"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            best_state, bad_epochs, start_epoch = saved["best_state"], saved["bad_epochs"], saved["epoch"]
            result.history = [EpochStats(**h) for h in saved["history"]]
            result.best_epoch, result.best_val_precision_at_1 = saved["best_epoch"], saved["best_p1"]
            torch.set_rng_state(saved["torch_rng"])
            np.random.set_state(saved["numpy_rng"])  # the m-per-class sampler draws from numpy's global state
            log.info("resuming head training at epoch %d", start_epoch + 1)
    gallery_rows = np.sort(np.random.default_rng(config.seed).permutation(train_rows)[: config.val_gallery])
    for model in models:
        model.train()
    for epoch in range(start_epoch + 1, config.max_epochs + 1):
        if config.max_seconds is not None and time.perf_counter() - started > config.max_seconds:
            result.stopped = f"time budget of {config.max_seconds:.0f}s reached"
            break
        epoch_started = time.perf_counter()
        # a new sampler each epoch: it shuffles its own state, which a resumed run would not have
        sampler = samplers.MPerClassSampler(labels[train_rows], m=m, batch_size=batch_size,
                                            length_before_new_iter=max(len(train_rows), batch_size))
        order = train_rows[np.fromiter(iter(sampler), np.int64)]
        total, batches, mined = 0.0, 0, 0
        for start in range(0, len(order) - batch_size + 1, batch_size):
            rows = torch.from_numpy(order[start : start + batch_size]).to(device)
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                embeddings = embed(rows)
            triplets = miner(embeddings, y[rows])
            loss = loss_fn(embeddings, y[rows], triplets)
            if aux is not None:
                loss = loss + config.aux_weight * aux(embeddings, y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach())
            batches += 1
            mined += len(triplets[0])
        p1 = _precision_at_1(models, embed, val_rows, gallery_rows, labels, device, bf16) if len(val_rows) else 0.0
        stats = EpochStats(epoch, total / max(batches, 1), p1, time.perf_counter() - epoch_started,
                           mined / max(batches, 1))
        result.history.append(stats)
        if p1 > result.best_val_precision_at_1 or epoch == 1:
            result.best_val_precision_at_1, result.best_epoch = p1, epoch
            best_state = _snapshot(models)
            bad_epochs = 0
        else:
            bad_epochs += 1
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {
                "config": config_key, "n": len(labels), "epoch": epoch, "model": _snapshot(models),
                "aux": aux.state_dict() if aux is not None else None,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "best_state": best_state, "bad_epochs": bad_epochs, "best_epoch": result.best_epoch,
                "best_p1": result.best_val_precision_at_1, "history": [asdict(h) for h in result.history],
                "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
            })
        if on_epoch:
            on_epoch(stats)
        if bad_epochs >= config.patience:
            result.stopped = f"no improvement for {config.patience} epochs"
            break
    else:
        result.stopped = result.stopped or f"{config.max_epochs} epochs"
    _restore(models, best_state)
    for model in models:
        model.eval()
    result.seconds = time.perf_counter() - started
    info = {"config": asdict(config), "best_epoch": result.best_epoch, "samples": len(labels),
            "val_precision_at_1": result.best_val_precision_at_1, "seconds": round(result.seconds, 1),
            "stopped": result.stopped}
    result.head = net.to_head(backbone, info)
    return result


def _snapshot(models: list[nn.Module]) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach().clone() for k, v in model.state_dict().items()} for model in models]


def _restore(models: list[nn.Module], states: list[dict[str, torch.Tensor]]) -> None:
    for model, state in zip(models, states, strict=True):
        model.load_state_dict(state)


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)

"""Training the embedding head: features of a catalog's images and their photo-like views -> 128-d embedding.

A small MLP (features -> hidden -> dim, L2-normalized) over frozen backbone features, trained with
pytorch-metric-learning losses at two levels (:mod:`~lookalike.training.objective`): the instance (an image and
its own views, or one item_id) and, weighted lower, the category (batch-hard mined triplets plus a proxy
loss). The batches (:mod:`~lookalike.training.batches`) hold the rows of an instance two by two. A held-out
validation split (whole instances) is scored after every epoch (:class:`Validation`); training stops early when
it stops improving, keeps the best weights, and checkpoints every epoch so an interrupted run resumes. The MLP
runs under bfloat16 autocast where the hardware has fast bfloat16; the exported head is float32 either way.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from lookalike.embedding.head import EmbeddingHead
from lookalike.evaluation.metrics import knn
from lookalike.io.files import atomic_write
from lookalike.training.batches import Batches, ClassBalancedBatches, PairedBatches
from lookalike.training.objective import CategoryTerm, InstanceTerm, Miner, Objective, Term

log = logging.getLogger(__name__)

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
    instance_weight: float = 1.0  # the instance term (SupCon over an image and its views); 0: categories only
    instance_temperature: float = 0.1
    category_weight: float = 2.0  # the category term's weight beside the instance term (BENCHMARKS.md, #17)
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
    weight_bits: int = 8  # the trained head's EmbeddingHead.weight_bits: 8, its large first layer in 8-bit weights


@dataclass
class EpochStats:
    epoch: int
    loss: float
    val_precision_at_1: float
    seconds: float
    val_instance_recall_at_10: float = 0.0
    val_score: float = 0.0


@dataclass
class TrainResult:
    head: EmbeddingHead
    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    best_val_precision_at_1: float = 0.0
    best_val_instance_recall_at_10: float = 0.0
    best_score: float = 0.0
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

    def to_head(self, backbone: str, info: dict, weight_bits: int = 8) -> EmbeddingHead:
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
                [bias.float().cpu().numpy(), self.fc2.bias.cpu().numpy()], info, weight_bits=weight_bits,
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


def split_validation(labels: np.ndarray, fraction: float, seed: int,
                     instances: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train rows, validation rows); labels with a single example stay in training. With
    ``instances``, the rows of one instance stay on the same side."""
    rng = np.random.default_rng(seed)
    groups = instances if instances is not None else np.arange(len(labels))
    _, first = np.unique(groups, return_index=True)  # one representative row per instance
    val_groups = []
    for label in np.unique(labels[first]):
        members = rng.permutation(groups[first][labels[first] == label])
        n_val = int(round(len(members) * fraction)) if len(members) > 1 else 0
        val_groups.append(members[:n_val])
    is_val = np.isin(groups, np.concatenate(val_groups))
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _embed_rows(models: list[nn.Module], embed: Callable[[torch.Tensor], torch.Tensor], rows: np.ndarray,
                device: torch.device, bf16: bool) -> np.ndarray:
    """Embeddings of training ``rows`` with ``models`` in inference mode."""
    for model in models:
        model.eval()
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        out = torch.cat([embed(chunk).float() for chunk in torch.from_numpy(rows).to(device).split(8192)])
    for model in models:
        model.train()
    return out.cpu().numpy()


@dataclass
class Validation:
    """The epoch-end check: category precision@1 of held-out rows against a sample of the training rows, and
    instance recall@10 of one held-out row per held-out instance among that sample plus the other held-out rows.
    Its score (the mean of the two that apply) decides the best epoch."""

    rows: np.ndarray
    gallery: np.ndarray
    categories: np.ndarray | None
    instances: np.ndarray | None

    def __call__(self, embeddings: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
        if not len(self.rows):
            return 0.0, 0.0
        val, gallery = embeddings(self.rows), embeddings(self.gallery)
        p1 = 0.0
        if self.categories is not None:
            _, idx = knn(val, gallery, 1)
            p1 = float((self.categories[self.gallery][idx[:, 0]] == self.categories[self.rows]).mean())
        recall = 0.0
        if self.instances is not None:
            ids = self.instances[self.rows]
            _, first = np.unique(ids, return_index=True)
            has_other = np.bincount(np.searchsorted(np.unique(ids), ids)) > 1
            queries = first[has_other]
            if len(queries):
                rest = np.setdiff1d(np.arange(len(self.rows)), queries)
                pool = np.concatenate([gallery, val[rest]])
                pool_ids = np.concatenate([self.instances[self.gallery], ids[rest]])
                _, idx = knn(val[queries], pool, 10)
                recall = float((pool_ids[idx] == ids[queries, None]).any(axis=1).mean())
        return p1, recall

    def score(self, p1: float, recall: float) -> float:
        parts = [v for v, known in ((p1, self.categories is not None), (recall, self.instances is not None)) if known]
        return sum(parts) / max(len(parts), 1)


def objective_for(config: TrainConfig, categories: np.ndarray | None, instances: np.ndarray | None) -> Objective:
    """The loss terms that apply: the instance term where rows share instances, the category term where there
    are categories (weighted lower when both apply)."""
    terms: list[tuple[float, Term]] = []
    if instances is not None and config.instance_weight:
        terms.append((config.instance_weight, InstanceTerm(config.instance_temperature)))
    if categories is not None:
        proxy = config.aux_weight if config.aux_loss == "normalized-softmax" else 0.0
        weight = config.category_weight if terms else 1.0
        terms.append((weight, CategoryTerm(int(categories.max()) + 1, config.dim, config.margin, config.miner, proxy)))
    if not terms:
        raise ValueError("training needs categories or instances")
    return Objective(terms)


def train_head(
    features: np.ndarray,
    labels: np.ndarray | None,
    backbone: str,
    config: TrainConfig,
    checkpoint: Path | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    tail: nn.Module | None = None,
    instances: np.ndarray | None = None,
) -> TrainResult:
    """Train the head on features with integer category ``labels`` and/or integer ``instances`` (rows of one
    product: an image and its views, or one item_id); resumes from ``checkpoint`` when it exists.

    With a ``tail`` (training rows -> backbone features, see :class:`~lookalike.training.finetune.TrainableTail`)
    its trainable weights learn too, and ``features`` (the frozen backbone's) only set the standardization.
    """
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = torch.device(config.device)
    if instances is not None and len(np.unique(instances)) == len(instances):
        instances = None  # no instance has two rows: nothing for the instance term to pull together
    objective = objective_for(config, labels, instances)
    n = len(features)
    strata = labels if labels is not None else np.zeros(n, np.int64)
    train_rows, val_rows = split_validation(strata, config.val_fraction, config.seed, instances)
    y = torch.from_numpy(strata).to(device)
    ids = torch.from_numpy(instances if instances is not None else np.arange(n)).to(device)
    x = nn.functional.normalize(torch.from_numpy(np.asarray(features, np.float32)).to(device), dim=1)
    mean, std = feature_statistics(x[train_rows])
    net = HeadNet(features.shape[1], config.hidden, config.dim, config.dropout, mean, std).to(device)
    x.sub_(net.mean).div_(net.std)  # net.standardize, once for all epochs rather than for every batch
    if tail is not None:
        tail.to(device)
    models: list[nn.Module] = [net] if tail is None else [net, tail]
    terms = [module.to(device) for module in objective.modules()]

    def embed(rows: torch.Tensor) -> torch.Tensor:
        return net.embed(x[rows] if tail is None else net.standardize(tail(rows)))
    groups: list[dict[str, Any]] = [{"params": net.parameters(), "lr": config.lr, "weight_decay": config.weight_decay}]
    for term in terms:  # the category proxies learn faster than the network
        groups.append({"params": term.parameters(), "lr": config.lr * 10, "weight_decay": 0.0})
    if tail is not None:
        groups.append({"params": [p for p in tail.parameters() if p.requires_grad], "lr": config.tail_lr,
                       "weight_decay": config.weight_decay})
    optimizer = torch.optim.AdamW(groups, fused=True)  # fused: a fifth of the step time of the for-loop version
    bf16 = bf16_is_fast(device) if config.bf16 is None else config.bf16
    batches: Batches = (PairedBatches(instances[train_rows], config.batch_size) if instances is not None
                        else ClassBalancedBatches(strata[train_rows], config.m_per_class, config.batch_size))
    steps_per_epoch = max(len(train_rows), batches.batch_size) // batches.batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in groups], pct_start=0.1,
                                                    total_steps=max(20, config.max_epochs * steps_per_epoch))
    result = TrainResult(head=net.to_head(backbone, {}, config.weight_bits))
    best_state = _snapshot(models)
    bad_epochs, start_epoch = 0, 0
    config_key = json.dumps(asdict(config), sort_keys=True)
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        if saved.get("config") == config_key and saved.get("n") == n:
            _restore(models + terms, saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            best_state, bad_epochs, start_epoch = saved["best_state"], saved["bad_epochs"], saved["epoch"]
            result.history = [EpochStats(**h) for h in saved["history"]]
            result.best_epoch, result.best_score = saved["best_epoch"], saved["best_score"]
            result.best_val_precision_at_1 = saved["best_p1"]
            torch.set_rng_state(saved["torch_rng"])
            rng.bit_generator.state = saved["rng"]
            log.info("resuming head training at epoch %d", start_epoch + 1)
    gallery_rows = np.sort(np.random.default_rng(config.seed).permutation(train_rows)[: config.val_gallery])
    validation = Validation(val_rows, gallery_rows, labels, instances)
    for model in models:
        model.train()
    for epoch in range(start_epoch + 1, config.max_epochs + 1):
        if config.max_seconds is not None and time.perf_counter() - started > config.max_seconds:
            result.stopped = f"time budget of {config.max_seconds:.0f}s reached"
            break
        epoch_started = time.perf_counter()
        total, count = 0.0, 0
        for batch in batches.epoch(rng):
            rows = torch.from_numpy(train_rows[batch]).to(device)
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                embeddings = embed(rows)
            loss = objective(embeddings, y[rows], ids[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach())
            count += 1
        p1, recall = validation(lambda rows: _embed_rows(models, embed, rows, device, bf16))
        score = validation.score(p1, recall)
        stats = EpochStats(epoch, total / max(count, 1), p1, time.perf_counter() - epoch_started, recall, score)
        result.history.append(stats)
        if score > result.best_score or epoch == 1:
            result.best_score, result.best_val_precision_at_1, result.best_epoch = score, p1, epoch
            result.best_val_instance_recall_at_10 = recall
            best_state = _snapshot(models)
            bad_epochs = 0
        else:
            bad_epochs += 1
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {
                "config": config_key, "n": n, "epoch": epoch, "model": _snapshot(models + terms),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "best_state": best_state, "bad_epochs": bad_epochs, "best_epoch": result.best_epoch,
                "best_score": result.best_score, "best_p1": result.best_val_precision_at_1,
                "history": [asdict(h) for h in result.history],
                "torch_rng": torch.get_rng_state(), "rng": rng.bit_generator.state,
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
    info = {"config": asdict(config), "best_epoch": result.best_epoch, "samples": n,
            "instances": int(len(np.unique(instances))) if instances is not None else None,
            "val_precision_at_1": result.best_val_precision_at_1,
            "val_instance_recall_at_10": result.best_val_instance_recall_at_10,
            "seconds": round(result.seconds, 1), "stopped": result.stopped}
    result.head = net.to_head(backbone, info, config.weight_bits)
    return result


def _snapshot(models: list[nn.Module]) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach().clone() for k, v in model.state_dict().items()} for model in models]


def _restore(models: list[nn.Module], states: list[dict[str, torch.Tensor]]) -> None:
    for model, state in zip(models, states, strict=True):
        model.load_state_dict(state)


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as file:
        torch.save(state, file)

"""A training job: learn the active embedding head (and, if asked, fine-tune the backbone's last blocks) from a
catalog, save it where the engine finds it, and rebuild the index with it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Literal, Protocol

from lookalike.backbone.runtime import load_backbone
from lookalike.bootstrap import build_featurizer, head_path, load_extractor, open_rebuilt_engine
from lookalike.config import Settings
from lookalike.data.sources import CatalogEntry
from lookalike.embedding.featurizer import Featurizer
from lookalike.embedding.head import BACKBONE_WEIGHTS_INFO, EmbeddingHead, fit_pca_head
from lookalike.embedding.labelled import LabelledFeatures, collect_features, collect_photo_like_features
from lookalike.training.finetune import (
    TrainableTail,
    backbone_weights_files,
    fine_tunable_backbone,
    prepared_batches,
    save_backbone_weights,
)
from lookalike.training.triplet import EpochStats, TrainConfig, train_head

Method = Literal["triplet", "pca"]
Tracker = Callable[[int, int], None]  # (done, total)


class Reporter(Protocol):
    """Where a job shows its progress: a tracker per stage, each finished epoch, and one-line messages."""

    def stage(self, name: str) -> AbstractContextManager[Tracker]: ...

    def epoch(self, stats: EpochStats, max_epochs: int) -> None: ...

    def say(self, text: str) -> None: ...


def train_active_head(settings: Settings, entries: Sequence[CatalogEntry], method: Method, config: TrainConfig,
                      reporter: Reporter, *, reindex: bool = True, resume: bool = True, augment: int = 0,
                      ) -> EmbeddingHead:
    """Train a head on the entries' (cached) backbone features and make it the active one; positives share an
    item_id when every entry has one, else an image and its photo-like views. Returns the head."""
    extractor = load_extractor(settings, fine_tuned=False)  # training starts from the configured backbone
    featurizer = build_featurizer(settings, extractor)
    with reporter.stage("features") as track:
        data = collect_features(featurizer, list(entries), track)
    path = head_path(settings.heads_dir, extractor.name)
    if method == "pca":
        head = dataclasses.replace(fit_pca_head(data.features, extractor.fingerprint, config.dim),
                                   weight_bits=config.weight_bits)
    else:
        if augment:
            with reporter.stage("photo-like views") as track:
                views = collect_photo_like_features(featurizer, data.entries, augment, config.seed, track)
            data = data.with_views(views)
        head = _train_triplet(settings, featurizer, data, config, reporter, resume)
    head.save(path)
    _remove_unused_backbones(settings, extractor.name, head)
    reporter.say(f"trained head {head.version} on {len(data.entries)} images and views "
                 f"({len(data.failures)} unreadable)")
    if reindex:
        with reporter.stage("reindexing") as track:
            engine, rebuilt = open_rebuilt_engine(settings, track)
        engine.close()
        if rebuilt.added:
            reporter.say(f"reindexed {rebuilt.added} catalog items with the new head")
    return head


def _train_triplet(settings: Settings, featurizer: Featurizer, data: LabelledFeatures, config: TrainConfig,
                   reporter: Reporter, resume: bool) -> EmbeddingHead:
    use_ids = all(e.item_id for e in data.entries)
    checkpoint = head_path(settings.heads_dir, featurizer.extractor.name).with_suffix(".checkpoint.pt")
    if not resume:
        checkpoint.unlink(missing_ok=True)
    tail = _trainable_tail(settings, featurizer, data, config, reporter) if config.fine_tune_blocks else None
    with reporter.stage("training"):
        result = train_head(data.features, data.category_labels(), featurizer.extractor.fingerprint, config,
                            checkpoint, lambda stats: reporter.epoch(stats, config.max_epochs), tail,
                            data.instance_labels())
    checkpoint.unlink(missing_ok=True)
    reporter.say(f"best validation precision@1 {result.best_val_precision_at_1:.4f}, instance recall@10 "
                 f"{result.best_val_instance_recall_at_10:.4f} at epoch {result.best_epoch} "
                 f"({'item ids' if use_ids else 'images and their views'} as instances; {result.stopped}; "
                 f"{result.seconds:.0f}s)")
    return result.head if tail is None else _with_fine_tuned_backbone(settings, result.head, tail, reporter)


def _trainable_tail(settings: Settings, featurizer: Featurizer, data: LabelledFeatures, config: TrainConfig,
                    reporter: Reporter) -> TrainableTail:
    """The backbone's last blocks over its frozen trunk's outputs for every training image (run once here)."""
    blocks = config.fine_tune_blocks
    backbone = fine_tunable_backbone(settings.backbone, settings.backbone_weights, blocks)
    inputs = prepared_batches(featurizer.prepare, data.images, settings.decode_workers)
    with reporter.stage("frozen blocks") as track:
        return TrainableTail(backbone, blocks, inputs, len(data.images), featurizer.extractor.preprocessing.input_size,
                             progress=track)


def _with_fine_tuned_backbone(settings: Settings, head: EmbeddingHead, tail: TrainableTail,
                              reporter: Reporter) -> EmbeddingHead:
    """Save the fine-tuned backbone beside the head, export it, and name it in the head."""
    weights = save_backbone_weights(tail.backbone, settings.heads_dir, settings.backbone)
    tuned = load_backbone(settings.backbone, settings.resolved_models_dir, str(weights), settings.onnx_threads)
    reporter.say(f"fine-tuned backbone {tuned.fingerprint} ({weights.name})")
    return dataclasses.replace(head, backbone=tuned.fingerprint,
                               info={**head.info, BACKBONE_WEIGHTS_INFO: weights.name})


def _remove_unused_backbones(settings: Settings, name: str, head: EmbeddingHead) -> None:
    """Delete fine-tuned backbone weights of ``name`` that the active head no longer names."""
    for stale in backbone_weights_files(settings.heads_dir, name):
        if stale.name != head.info.get(BACKBONE_WEIGHTS_INFO):
            stale.unlink(missing_ok=True)

"""Which training rows go into each batch of an epoch.

- :class:`PairedBatches`: every row once per epoch; the rows of one instance (an image and its views, or the
  images of one ``item_id``) are dealt in pairs that land in the same batch, so the instance term always has
  positives, and the rest of the batch are its in-batch negatives.
- :class:`ClassBalancedBatches`: ``m`` rows of each of a few categories per batch (pytorch-metric-learning's
  ``MPerClassSampler``), for category-only training.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
from pytorch_metric_learning import samplers


class Batches(Protocol):
    batch_size: int

    def epoch(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """The batches (arrays of row positions) of one epoch."""
        ...


def batch_shape(n_labels: int, m_per_class: int, batch_size: int) -> tuple[int, int]:
    """(m, batch size) for an m-per-class sampler: with few labels, more examples of each fill the batch."""
    if n_labels < 2:
        raise ValueError("training needs at least two different labels")
    m = max(m_per_class, batch_size // n_labels)
    return m, m * min(n_labels, max(batch_size // m, 2))


class PairedBatches:
    """Batches of ``batch_size`` rows in which the rows of each instance come two by two."""

    def __init__(self, instances: np.ndarray, batch_size: int) -> None:
        self.instances = np.asarray(instances)
        self.batch_size = min(batch_size, len(self.instances) - len(self.instances) % 2)
        if self.batch_size < 2:
            raise ValueError("training needs at least two rows")

    def epoch(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        order = rng.permutation(len(self.instances))
        order = order[np.argsort(self.instances[order], kind="stable")]  # each instance's rows together, shuffled
        starts = np.flatnonzero(np.r_[True, self.instances[order][1:] != self.instances[order][:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        pairs, singles = [], []
        for start, size in zip(starts.tolist(), sizes.tolist(), strict=True):
            rows = order[start : start + size]
            pairs += [rows[i : i + 2] for i in range(0, size - 1, 2)]
            if size % 2:
                singles.append(rows[-1])
        pair_rows = np.array(pairs, np.int64).reshape(-1, 2)[rng.permutation(len(pairs))]
        single_rows = rng.permutation(np.array(singles, np.int64))
        n_batches = max(1, len(self.instances) // self.batch_size)
        pairs_per_batch = min(len(pair_rows) // n_batches, self.batch_size // 2) if len(pair_rows) else 0
        singles_per_batch = self.batch_size - 2 * pairs_per_batch
        for b in range(n_batches):
            batch = np.concatenate([pair_rows[b * pairs_per_batch : (b + 1) * pairs_per_batch].ravel(),
                                    single_rows[b * singles_per_batch : (b + 1) * singles_per_batch]])
            if len(batch) < self.batch_size:  # too few singles: top the batch up with other pairs' rows
                extra = rng.choice(len(self.instances), self.batch_size - len(batch), replace=False)
                batch = np.concatenate([batch, extra])
            yield batch


class ClassBalancedBatches:
    """``m`` rows of each of ``batch_size // m`` labels per batch."""

    def __init__(self, labels: np.ndarray, m_per_class: int, batch_size: int) -> None:
        self.labels = np.asarray(labels)
        self.m, self.batch_size = batch_shape(len(np.unique(self.labels)), m_per_class, batch_size)

    def epoch(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        # the sampler draws from numpy's global state: seed it from ours so a resumed run repeats the epoch
        np.random.seed(int(rng.integers(2**31)))
        sampler = samplers.MPerClassSampler(self.labels, m=self.m, batch_size=self.batch_size,
                                            length_before_new_iter=max(len(self.labels), self.batch_size))
        order = np.fromiter(iter(sampler), np.int64)
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            yield order[start : start + self.batch_size]

"""The loss a training batch is scored by: weighted terms over two levels of likeness (pytorch-metric-learning).

- :class:`InstanceTerm`: the same product (an image and its own photo-like views, or images sharing an
  ``item_id``) is the strongest positive. Supervised contrastive loss (SupCon; with one positive per row it is
  NT-Xent / InfoNCE) over the batch: every other row is a negative, so the head must tell one item from the
  others of its category. (PML's NTXentLoss gives the same value, about 50x slower: BENCHMARKS.md.)
- :class:`CategoryTerm`: the same category is a weaker positive. A batch-hard (or semi-hard) mined triplet loss
  plus a normalized-softmax proxy loss over the categories.

An :class:`Objective` sums the terms it was given with their weights; a training step needs nothing else from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from pytorch_metric_learning import distances, losses, miners
from torch import nn

Miner = Literal["semihard", "hard", "batch-hard"]


class Term(Protocol):
    """One part of the loss: (embeddings, category labels, instance labels) -> a scalar."""

    def __call__(self, embeddings: torch.Tensor, categories: torch.Tensor, instances: torch.Tensor) -> torch.Tensor:
        ...


class InstanceTerm:
    """Supervised contrastive loss on instance labels: views of one item together, every other row apart."""

    def __init__(self, temperature: float) -> None:
        self.loss = losses.SupConLoss(temperature=temperature)

    def __call__(self, embeddings: torch.Tensor, categories: torch.Tensor, instances: torch.Tensor) -> torch.Tensor:
        return self.loss(embeddings, instances)


class CategoryTerm(nn.Module):
    """Mined triplet loss (cosine, ``margin``) plus a normalized-softmax proxy loss on the category labels."""

    def __init__(self, categories: int, dim: int, margin: float, miner: Miner, proxy_weight: float,
                 temperature: float = 0.05) -> None:
        super().__init__()
        cosine = distances.CosineSimilarity()
        self.triplet = losses.TripletMarginLoss(margin=margin, distance=cosine)
        self.miner = (miners.BatchHardMiner(distance=cosine) if miner == "batch-hard"
                      else miners.TripletMarginMiner(margin=margin, type_of_triplets=miner, distance=cosine))
        self.proxy_weight = proxy_weight
        self.proxies = losses.NormalizedSoftmaxLoss(categories, dim, temperature=temperature) if proxy_weight else None

    def __call__(self, embeddings: torch.Tensor, categories: torch.Tensor, instances: torch.Tensor) -> torch.Tensor:
        loss = self.triplet(embeddings, categories, self.miner(embeddings, categories))
        if self.proxies is not None:
            loss = loss + self.proxy_weight * self.proxies(embeddings, categories)
        return loss


@dataclass
class Objective:
    """The weighted sum of the terms that apply to this catalog."""

    terms: list[tuple[float, Term]]

    def __call__(self, embeddings: torch.Tensor, categories: torch.Tensor, instances: torch.Tensor) -> torch.Tensor:
        return sum((weight * term(embeddings, categories, instances) for weight, term in self.terms),
                   torch.zeros((), device=embeddings.device))

    def modules(self) -> list[nn.Module]:
        """The terms with weights of their own (the category proxies), for the optimizer and the checkpoint."""
        modules: list[nn.Module] = [term for _, term in self.terms if isinstance(term, nn.Module)]
        return modules

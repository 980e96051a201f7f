"""Relevance feedback: move a query toward the results a shopper liked and away from those they disliked.

Rocchio's update, ``q' = normalize(alpha * q + beta * mean(liked) - gamma * mean(disliked))``, with SMART's
classic weights alpha = 1, beta = 0.75, gamma = 0.25 (disliked results are weaker evidence than liked ones:
a result can be wrong for many reasons). All vectors are unit length, so the weights compare directly.
"""

from __future__ import annotations

import numpy as np

from lookalike.search import normalize

ALPHA = 1.0
BETA = 0.75
GAMMA = 0.25


def rocchio(query: np.ndarray, liked: np.ndarray, disliked: np.ndarray,
            alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA) -> np.ndarray:
    """The refined query, unit length, shape (1, dim); empty ``liked``/``disliked`` (0, dim) leave their term out."""
    moved = alpha * np.asarray(query, np.float32).reshape(1, -1)
    if len(liked):
        moved = moved + beta * np.asarray(liked, np.float32).mean(axis=0, keepdims=True)
    if len(disliked):
        moved = moved - gamma * np.asarray(disliked, np.float32).mean(axis=0, keepdims=True)
    return normalize(moved)

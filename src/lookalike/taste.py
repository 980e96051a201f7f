"""A shopper's taste: their past queries and liked items folded into one vector, kept in the catalog database;
recommendations are the catalog items nearest to it that the shopper has not been shown or liked yet.

The taste is the running sum ``SEARCH_WEIGHT * query + LIKE_WEIGHT * liked - DISLIKE_WEIGHT * disliked`` over
everything the shopper did (unit-length vectors, so a like counts as two searches); its direction is the
recommendation query. A new model (other embedding space) starts the sum afresh; what was shown stays excluded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from lookalike.catalog.repository import ShopperTaste
from lookalike.search import SearchResult, SearchService, normalize

SEARCH_WEIGHT = 1.0
LIKE_WEIGHT = 2.0
DISLIKE_WEIGHT = 1.0
MAX_EXCLUDED = 5000  # the most recent shown/liked items left out of recommendations


class TasteProfiles:
    """Reads and updates shoppers' tastes through the catalog database."""

    def __init__(self, service: SearchService) -> None:
        self.service = service
        self.catalog = service.engine.catalog
        self._updating = threading.Lock()  # one read-modify-write of a taste at a time in this process

    def _taste(self, shopper: str) -> ShopperTaste:
        version = self.service.engine.model_version
        taste = self.catalog.shopper_profile(shopper)
        if taste is None or taste.model_version != version:
            return ShopperTaste(version, np.zeros(self.service.engine.head.dim, np.float32))
        return taste

    def record_searches(self, shopper: str, queries: np.ndarray, shown: Iterable[int]) -> None:
        """Searches by the shopper: their queries (rows) join the taste, their results count as seen."""
        with self._updating:
            taste = self._taste(shopper)
            added = np.asarray(queries, np.float32).reshape(-1, len(taste.vector))
            vector = taste.vector + SEARCH_WEIGHT * added.sum(axis=0)
            self.catalog.save_shopper_profile(shopper, ShopperTaste(taste.model_version, vector,
                                                                    taste.searches + len(added), taste.likes))
            self.catalog.add_shopper_items(shopper, shown, "seen")

    def record_feedback(self, shopper: str, liked: list[int], disliked: list[int]) -> None:
        """Items the shopper liked (toward) and disliked (away)."""
        if not liked and not disliked:
            return
        with self._updating:
            taste = self._taste(shopper)
            vector = taste.vector.copy()
            if liked:
                vector += LIKE_WEIGHT * self.service.item_vectors(liked).sum(axis=0)
                self.catalog.add_shopper_items(shopper, liked, "liked")
            if disliked:
                vector -= DISLIKE_WEIGHT * self.service.item_vectors(disliked).sum(axis=0)
                self.catalog.add_shopper_items(shopper, disliked, "disliked")
            self.catalog.save_shopper_profile(shopper, ShopperTaste(taste.model_version, vector, taste.searches,
                                                                    taste.likes + len(liked)))

    def describe(self, shopper: str) -> ShopperTaste:
        return self._taste(shopper)

    def recommend(self, shopper: str, k: int, dedupe_threshold: float | None = None,
                  allowed: np.ndarray | None = None) -> SearchResult:
        """Items nearest the shopper's taste, one per product, leaving out what they were shown, liked or disliked;
        none without a taste yet."""
        taste = self._taste(shopper)
        if not np.any(taste.vector):
            return SearchResult([], 0.0)
        exclude = self.catalog.shopper_items(shopper, ("seen", "liked", "disliked"), limit=MAX_EXCLUDED)
        query = normalize(taste.vector.reshape(1, -1))
        return self.service.search_vectors(query, k, exclude=exclude, dedupe_threshold=dedupe_threshold,
                                           by_product=True, allowed=allowed)[0]

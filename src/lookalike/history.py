"""Search history: every answered search is stored with its query embedding (so that it can be refined) and,
for a known shopper, joins their taste."""

from __future__ import annotations

from lookalike.search import SearchResult
from lookalike.taste import TasteProfiles


class SearchHistory:
    """Records answered searches in the catalog database."""

    def __init__(self, tastes: TasteProfiles) -> None:
        self.tastes = tastes
        self.catalog = tastes.catalog

    def record(self, label: str, k: int, category: str | None, found: SearchResult, shopper: str | None,
               taste: bool = True) -> int:
        """Store the search and its results (and, for ``shopper`` and unless ``taste`` is False, as for a search
        made again with another filter, fold it into their taste); returns its id."""
        query = found.query
        query_id = self.catalog.record_search(
            label[:200], k, category, found.took_ms,
            [{"id": h.id, "score": h.score, "category": h.category} for h in found.hits],
            vector=None if query is None else query.reshape(-1), model_version=self.tastes.service.engine.model_version,
            shopper=shopper, palette=found.palette)
        if shopper and taste and query is not None:
            self.tastes.record_search(shopper, query, [h.id for h in found.hits])
        return query_id

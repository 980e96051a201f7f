"""SearchService: image -> embedding -> nearest catalog items -> ranked results with metadata.

Used alike by the CLI and the API.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from lookalike.batching import BatchFn
from lookalike.catalog.repository import ItemRecord
from lookalike.catalog.view import CatalogView
from lookalike.concurrency import bounded_map
from lookalike.duplicates import collapse, image_signatures
from lookalike.engine import Engine
from lookalike.errors import EmptyCatalogError, ImageDecodeError, InvalidRequestError, NotFoundError
from lookalike.index.base import VectorStore
from lookalike.io.images import decode_pixels
from lookalike.item_vectors import readable_item_vectors
from lookalike.metrics import stage
from lookalike.signatures import PALETTE_BINS, colour_mismatch, colourfulness, palette

StoreSearch = Callable[[np.ndarray, int, "str | None"], tuple[np.ndarray, np.ndarray]]  # queries, k, category

MAX_K = 1000
DELETE_SLACK = 8  # extra candidates, so items deleted between the index search and the record lookup leave k
MAX_EXAMPLES = 20
CANDIDATES = 4  # a deduplicated or colour-ranked list of k is picked from the best 4k + 10 candidates
COLOUR_WEIGHT = 2.0  # a full colour mismatch costs this share of its category's candidates' score range
IN_COLOUR = 0.25  # an image whose garment is at least this share coloured (signatures.colourfulness) is in colour
MAX_PALETTES = 200_000  # item palettes remembered by a search service (about 200 bytes each)
COLOUR_CATALOG = 0.2  # when at least this share of a query's candidates are in colour, colour ranks them too


@dataclass(frozen=True)
class SearchHit:
    """One ranked result."""

    id: int
    rank: int
    score: float  # what ranks it: the similarity less the colour penalty where colour ranked the results
    similarity: float  # cosine similarity to the query
    category: str | None
    path: str
    item_id: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    colour_match: float | None = None  # palette similarity to the query, 0..1, where colour ranked the results
    sku: str | None = None  # the product the item shows (a synced feed's)
    product: dict[str, Any] | None = None  # that product's attributes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Candidate(NamedTuple):
    """An index candidate with its catalog record, before ranking."""

    similarity: float
    record: ItemRecord


class ColourRanking(NamedTuple):
    """Where colour ranked a query's candidates: each one's score less its colour penalty, and its colour match."""

    score: np.ndarray
    match: np.ndarray


@dataclass(frozen=True)
class SearchResult:
    """The results of one query, best first, and the query embedding they answer."""

    hits: list[SearchHit]
    took_ms: float
    query: np.ndarray | None = None
    palette: np.ndarray | None = None  # the query's colours, where they ranked the results


class SearchService:
    """Nearest catalog items for query images, vectors or catalog items."""

    def __init__(self, engine: Engine, embed_inputs: BatchFn | None = None,
                 search_store: StoreSearch | None = None, colour_weight: float = COLOUR_WEIGHT) -> None:
        """``embed_inputs`` (backbone inputs -> embeddings) and ``search_store`` (queries, k, category -> scores,
        ids) replace the direct backbone + head and index calls, e.g. with :class:`~lookalike.batching.MicroBatcher`
        instances that share backbone passes and index scans between concurrent queries. ``colour_weight``: how
        much colour ranks results in a catalog in colour (0: not at all; see :meth:`search_vectors`)."""
        self.engine = engine
        self.colour_weight = colour_weight
        self.view = CatalogView(engine.catalog)
        self._palette_of: dict[str, np.ndarray] = {}  # by content hash: an image's colours never change
        self._embed_inputs = embed_inputs or engine.embed_inputs
        self._search_store = search_store or (lambda queries, k, category: self.engine.store.search(
            queries, k, category))

    def _check(self, k: int) -> None:
        if not 1 <= k <= MAX_K:
            raise InvalidRequestError(f"k must be between 1 and {MAX_K}, got {k}")
        if len(self.engine.store) == 0:
            raise EmptyCatalogError("the catalog is empty: ingest images first (`lookalike ingest PATH`)")

    def query_embeddings(self, images: Sequence[bytes | Path], labels: Sequence[str] | None = None,
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings and palettes of query images, each image decoded once; ImageDecodeError for an unreadable one,
        named by its label when given."""
        featurizer = self.engine.featurizer
        size = featurizer.extractor.preprocessing.input_size

        def decode(position: int) -> tuple[np.ndarray, np.ndarray]:
            try:
                pixels = decode_pixels(images[position], max_pixels=featurizer.max_pixels, draft_size=size)
            except ImageDecodeError as exc:
                if labels is None:
                    raise
                raise type(exc)(f"{labels[position]}: {exc}") from None
            image = Image.fromarray(pixels)  # one image for both: each conversion copies the pixels
            return featurizer.extractor.prepare(image), palette(image, own=True)

        if not images:
            return np.zeros((0, self.engine.head.dim), np.float32), np.zeros((0, PALETTE_BINS), np.float32)
        workers = min(featurizer.workers, len(images))
        with stage("decode"):
            decoded = list(bounded_map(decode, range(len(images)), workers, 2 * workers))
            inputs = np.stack([inputs for inputs, _ in decoded])
        with stage("embed"):
            embeddings = self._embed_inputs(inputs)
        return embeddings, np.stack([colours for _, colours in decoded])

    def search_images(
        self, images: list[bytes | Path], k: int = 5, category: str | None = None, allowed: np.ndarray | None = None,
    ) -> list[SearchResult]:
        """One response per image; ``took_ms`` covers decoding, embedding and search of each batch."""
        self._check(k)
        started = time.perf_counter()
        vectors, palettes = self.query_embeddings(images)
        return self.search_vectors(vectors, k, category, started=started, palettes=palettes, allowed=allowed)

    def search_vectors(
        self, vectors: np.ndarray, k: int = 5, category: str | None = None, *, exclude: set[int] | None = None,
        started: float | None = None, dedupe_threshold: float | None = None, palettes: np.ndarray | None = None,
        by_product: bool = False, allowed: np.ndarray | None = None,
    ) -> list[SearchResult]:
        """One response per query vector. ``by_product`` keeps each product's best image only (k results = k
        products; an item of no product stands for itself); ``dedupe_threshold`` keeps no two results that alike
        (still k of them when the candidates allow); ``allowed`` (a filter's matching ids, ``lookalike.filters``)
        keeps the true top k among those items; ``palettes`` (one per query, ``lookalike.signatures``) rank by
        colour too where the candidates are in colour: a result's score loses up to ``colour_weight`` times the
        spread of its category's candidates' scores for colours unlike the query's, and the results of each category
        are re-ranked among themselves (``_by_colour``). The spread, not a fixed amount, so that colour weighs the
        same against a head that packs its scores close together and one that spreads them wide."""
        self._check(k)
        started = started if started is not None else time.perf_counter()
        extra = (len(exclude) if exclude else 0) + DELETE_SLACK
        narrowed = dedupe_threshold is not None or palettes is not None or by_product
        fetch = k * CANDIDATES + 10 if narrowed else k
        with stage("index"):
            if allowed is None:
                scores, ids = self._search_store(vectors, fetch + extra, category)
            else:  # filtered searches are not batched together: each has its own ids
                scores, ids = self.engine.store.search(vectors, fetch + extra, category, allowed)
        with stage("catalog"):
            return self._results(vectors, scores, ids, k, fetch, started, exclude, dedupe_threshold, palettes,
                                 by_product)

    def _results(self, vectors: np.ndarray, scores: np.ndarray, ids: np.ndarray, k: int, fetch: int, started: float,
                 exclude: set[int] | None, dedupe_threshold: float | None, palettes: np.ndarray | None,
                 by_product: bool) -> list[SearchResult]:
        """The index's candidates as ranked results: records, colours, products, duplicates (see
        :meth:`search_vectors`). Each step orders positions in the query's candidates; only the k results are
        made into hits."""
        self.view.refresh()
        # per query, its first candidates not excluded: enough for ``fetch`` hits though DELETE_SLACK of them be gone
        candidates = [[(score, item) for score, item in zip(row_scores.tolist(), row_ids.tolist(), strict=True)
                       if item >= 0 and not (exclude and item in exclude)][: fetch + DELETE_SLACK]
                      for row_scores, row_ids in zip(scores, ids, strict=True)]
        records = self.view.items(item for row in candidates for _, item in row)
        by_colour = palettes is not None and self.colour_weight > 0
        colours = self._palettes(list(records.values())) if by_colour or dedupe_threshold is not None else {}
        responses = []
        for row, row_candidates in enumerate(candidates):
            found = [Candidate(round(score, 6), records[item]) for score, item in row_candidates
                     if item in records][:fetch]
            order, colour = list(range(len(found))), None
            if by_colour:
                order, colour = self._by_colour(found, colours, palettes[row])  # type: ignore[index]
            if by_product:
                order = _best_per_product(order, found)
            if dedupe_threshold is not None:
                order = self._distinct(order, found, colours, dedupe_threshold, k)
            responses.append(SearchResult(self._hits(found, order[:k], colour), 0.0, vectors[row],
                                          palettes[row] if palettes is not None else None))
        took_ms = (time.perf_counter() - started) * 1000 / max(len(vectors), 1)
        return [replace(r, took_ms=took_ms) for r in responses]

    def _hits(self, found: list[Candidate], chosen: list[int], colour: ColourRanking | None) -> list[SearchHit]:
        """The ``chosen`` candidates (positions in ``found``, best first) as ranked hits, with their products'
        attributes and, where colour ranked them, the score it left them and their colour match."""
        skus = {sku for position in chosen if (sku := found[position].record.sku)}
        products = self.view.product_attributes(skus) if skus else {}
        hits = []
        for rank, position in enumerate(chosen, 1):
            candidate = found[position]
            record = candidate.record
            score, match = candidate.similarity, None
            if colour is not None:
                score, match = round(float(colour.score[position]), 6), round(float(colour.match[position]), 4)
            hits.append(SearchHit(record.id, rank, score, candidate.similarity, record.category, record.path,
                                  record.item_id, record.metadata, match, record.sku,
                                  products.get(record.sku) if record.sku else None))
        return hits

    def _palettes(self, records: list[ItemRecord]) -> dict[int, np.ndarray]:
        """The palettes of the items' images by item id (zeros for an image that can no longer be read)."""
        known = self._palette_of
        missing = [r for r in records if r.content_hash not in known]
        if missing:
            found = image_signatures(self.engine.catalog, missing)
            if len(known) > MAX_PALETTES:
                known.clear()
            known.update({key: s.palette_vector() for key, s in found.items()})
        none = np.zeros(PALETTE_BINS, np.float32)
        return {r.id: known.get(r.content_hash, none) for r in records}

    def _by_colour(self, found: list[Candidate], colours: dict[int, np.ndarray], query: np.ndarray,
                   ) -> tuple[list[int], ColourRanking | None]:
        """The candidates' order once colour ranks them, when enough of them are in colour (else as they are, and
        no ranking). Each category keeps the ranks its items hold, and its items are re-ordered among them by score
        less the colour penalty: colour ranks a red dress above a blue one, but never a red shoe above either."""
        if not found:
            return [], None
        item_palettes = np.stack([colours[c.record.id] for c in found])
        if float(np.mean(colourfulness(item_palettes) >= IN_COLOUR)) < COLOUR_CATALOG:
            return list(range(len(found))), None
        match = np.clip(item_palettes @ query, 0.0, 1.0)
        scores = np.array([c.similarity for c in found])
        fused, order = scores.copy(), np.arange(len(found))
        categories = np.array([c.record.category or "" for c in found])
        for category in np.unique(categories):
            slots = np.flatnonzero(categories == category)
            fused[slots] -= self.colour_weight * float(np.ptp(scores[slots])) * colour_mismatch(match[slots])
            order[slots] = slots[np.argsort(-fused[slots], kind="stable")]
        return order.tolist(), ColourRanking(fused, match)

    def _distinct(self, order: list[int], found: list[Candidate], colours: dict[int, np.ndarray], threshold: float,
                  k: int) -> list[int]:
        """The best ``k`` of the candidates in ``order`` of which no two are duplicates (``threshold``-alike and of
        the same colours)."""
        engine = self.engine
        kept, vectors = readable_item_vectors(engine.featurizer, engine.head, [found[i].record for i in order])
        position_of = {found[i].record.id: i for i in order}
        palettes = np.stack([colours[r.id] for r in kept]) if kept else np.zeros((0, PALETTE_BINS), np.float32)
        return [position_of[kept[j].id] for j in collapse(vectors, threshold, k, palettes)]

    def item_palettes(self, ids: Sequence[int]) -> np.ndarray:
        """The palettes of catalog items, in order; NotFoundError names unknown ones."""
        records = self.engine.catalog.get_items(ids)
        missing = [str(i) for i in ids if i not in records]
        if missing:
            raise NotFoundError(f"no item with id {', '.join(missing[:10])}")
        colours = self._palettes([records[i] for i in ids])
        return np.stack([colours[i] for i in ids])

    def similar_to_item(self, item_id: int, k: int = 5, category: str | None = None,
                        dedupe_threshold: float | None = None, by_product: bool = False,
                        allowed: np.ndarray | None = None) -> SearchResult:
        """Items most like a catalog item ("more like this"; itself and the other images of its product excluded),
        its colours ranking as a photo's do."""
        started = time.perf_counter()
        vector = self.item_vectors([item_id])
        record = self.engine.catalog.get_items([item_id])[item_id]
        exclude = {item_id, *(self.engine.catalog.products.item_ids([record.sku]) if record.sku else [])}
        return self.search_vectors(vector, k, category, exclude=exclude, started=started,
                                   dedupe_threshold=dedupe_threshold, palettes=self.item_palettes([item_id]),
                                   by_product=by_product, allowed=allowed)[0]

    def item_vectors(self, ids: Sequence[int]) -> np.ndarray:
        """Embeddings of catalog items, in order; NotFoundError names unknown (or unreadable) ones."""
        records = self.engine.catalog.get_items(ids)
        missing = [str(i) for i in ids if i not in records]
        if missing:
            raise NotFoundError(f"no item with id {', '.join(missing[:10])}")
        kept, vectors = readable_item_vectors(self.engine.featurizer, self.engine.head, [records[i] for i in ids])
        if len(kept) != len(ids):
            lost = sorted(set(ids) - {r.id for r in kept})
            raise NotFoundError(f"the image of item {', '.join(map(str, lost[:10]))} can no longer be read")
        return vectors

    def example_query(self, images: Sequence[bytes | Path] = (), item_ids: Sequence[int] = (),
                      labels: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The query for "like these", (1, dim), and its colours, (1, PALETTE_BINS): the normalized means of the
        embeddings and of the palettes of example images (``labels`` name them in errors) and catalog items."""
        count = len(images) + len(item_ids)
        if count == 0:
            raise InvalidRequestError("give at least one example: an image file or a catalog item id")
        if count > MAX_EXAMPLES:
            raise InvalidRequestError(f"at most {MAX_EXAMPLES} examples, got {count}")
        vectors, palettes = self.query_embeddings(images, labels)
        if item_ids:
            vectors = np.concatenate([vectors, self.item_vectors(item_ids)])
            palettes = np.concatenate([palettes, self.item_palettes(item_ids)])
        return normalize(vectors.mean(axis=0, keepdims=True)), normalize(palettes.mean(axis=0, keepdims=True))


def _best_per_product(order: list[int], found: list[Candidate]) -> list[int]:
    """Each product's first (best) candidate in ``order``; candidates of no product are kept."""
    seen: set[str] = set()
    kept = []
    for position in order:
        sku = found[position].record.sku
        if sku is None or sku not in seen:
            kept.append(position)
            if sku is not None:
                seen.add(sku)
    return kept


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


def check_category(store: VectorStore, category: str | None) -> str | None:
    """The category filter to search with: None for none; InvalidRequestError naming the known categories for one
    the catalog does not have (an empty catalog passes: the search says it is empty)."""
    if not category or len(store) == 0:
        return category or None
    known = store.category_counts()
    if category not in known:
        names = ", ".join(sorted(known)[:20]) or "none"
        raise InvalidRequestError(f"unknown category {category!r}; known: {names}")
    return category

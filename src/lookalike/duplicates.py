"""Near-duplicate catalog items: the similarity threshold, groups of duplicate listings, collapsing result lists.

**Threshold.** Calibrated on the catalog itself (:func:`calibrate_threshold`): a sample of items is re-encoded
the ways a listing gets copied (JPEG quality 40, resized, 5% cropped off each side) and each copy is embedded
through the real pipeline; its similarity to the original is a *copy* score, and ``copy_low`` is their 5th
percentile. Each sampled item's nearest other item (exact byte copies aside) gives a *nearest* score. Items whose
nearest is at least ``copy_low`` are presumed to have a copy in the catalog already; when they are at most
half of the sample, the rest are *different* items, ``distinct_high`` is their 99th percentile and the
threshold is midway between the two. When more than half are that close, copies and different items
overlap in the embedding (a model trained to cluster a category can put different items of it closer than
copies): the threshold is then the 99th percentile of all nearest scores, so that few different items are ever
grouped on the embedding alone, and the pixels decide the rest (below). ``copies_found`` is the share of the
calibration's copies that the whole rule finds; the calibration is ``separable`` when it finds at least 95%.

**Groups.** Every item is range-searched for its ``NEIGHBOURS`` best items down to a floor. A pair is a
duplicate when

- its similarity reaches the threshold; or
- below it, down to ``CANDIDATE_WIDTH`` times the threshold's distance from 1, the two images' perceptual hashes
  (``lookalike.signatures``) differ in at most ``HASH_DISTANCE`` bits; or
- one is among the other's ``PIXEL_NEIGHBOURS`` nearest, down to ``PIXEL_WIDTH`` times the threshold's distance
  from 1, and their grey thumbnails, once aligned, correlate to at least ``PIXEL_MATCH`` (``lookalike.pixels``):
  a re-encoded, resized or slightly cropped copy keeps its pixels, while a different garment the embedding puts as
  close differs somewhere (on small images, where the embedding cannot tell the two, this is what finds copies).

Every way, the two colour thumbnails must agree (``COLOUR_DISTANCE``), and so must the garments' palettes
(``PALETTE_MATCH``): colour variants of one garment are look-alikes, not copies, even where the embedding and the
grey-level evidence cannot tell them apart. The pairs are the edges of a graph whose connected components
(single linkage) are the groups. The bound on neighbours keeps a low threshold on a large catalog from asking for
every pair; an item with more copies than that is still joined to the rest through them. BENCHMARKS.md (#17) has
the measurements behind the constants.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lookalike.calibrations import Calibration, load_or_fit
from lookalike.catalog.repository import Catalog, ItemRecord, StoredSignature
from lookalike.engine import Engine
from lookalike.errors import ImageDecodeError, InvalidRequestError
from lookalike.io.images import decode_image
from lookalike.item_vectors import readable_item_vectors
from lookalike.pixels import aligned_similarity, grey_thumbnail
from lookalike.signatures import Signature, signature

log = logging.getLogger(__name__)

SAMPLE = 100
BATCH = 2048
COPY_QUANTILE = 5
DISTINCT_QUANTILE = 99
MAX_DUPLICATE_SHARE = 0.5
NEIGHBOURS = 32  # the most duplicates range-searched per item
CANDIDATE_WIDTH = 1.25  # candidates down to 1 - CANDIDATE_WIDTH * (1 - threshold)
HASH_DISTANCE = 4  # differing bits of 64 for the hash to vouch for a pair below the threshold
PIXEL_NEIGHBOURS = 2  # the nearest items whose pixels are compared with an item's
PIXEL_WIDTH = 10.0  # pixels are compared down to 1 - PIXEL_WIDTH * (1 - threshold)
PIXEL_MATCH = 0.987  # the least aligned pixel correlation (lookalike.pixels) of a copy
FOUND_SHARE = 0.95  # the share of calibration copies found that makes a calibration separable
RULE = 2  # the version of the rule a calibration describes (2: the aligned pixels)
COLOUR_DISTANCE = 0.08  # the most the colour thumbnails of a duplicate pair differ (mean, 0 to 1)
PALETTE_MATCH = 0.9  # the least palette similarity (signatures.palette) of two duplicates, in groups and lists


def _jpeg(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=40)
    return Image.open(io.BytesIO(buffer.getvalue()))


def _resized(image: Image.Image) -> Image.Image:
    factor = 0.5 if min(image.size) >= 128 else 2.0
    return image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                        Image.Resampling.BICUBIC)


def _cropped(image: Image.Image) -> Image.Image:
    dx, dy = round(image.width * 0.05), round(image.height * 0.05)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


COPIES = {"jpeg-q40": _jpeg, "resized": _resized, "cropped-5%": _cropped}


@dataclass
class DuplicateThreshold(Calibration):
    """The calibrated threshold and the evidence behind it."""

    model_version: str
    items: int
    threshold: float
    separable: bool  # the whole rule finds at least FOUND_SHARE of the calibration's copies
    copy_low: float  # COPY_QUANTILE-th percentile of copy-to-original similarity
    distinct_high: float  # DISTINCT_QUANTILE-th percentile of nearest-other-item similarity
    copies: dict[str, float] = field(default_factory=dict)  # the same percentile, per kind of copy
    sample: int = 0
    embedding_separable: bool = False  # copies and different items apart in the embedding alone
    copies_found: float = 0.0  # the share of the calibration's copies that the whole rule finds
    nearest_matched: float = 0.0  # the share of sampled items whose nearest other item the pixels match
    rule: int = 1  # RULE when fitted; a calibration of an older rule is fitted again

    def current_for(self, engine: Engine) -> bool:
        return self.rule == RULE and super().current_for(engine)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class CopyEvidence:
    """Similarities of re-encoded copies of sampled items to their originals, and of the sampled items to their
    nearest other item (exact byte copies aside); for the copies, also how far their perceptual hashes are from
    the originals' and how alike their aligned pixels are."""

    copy_scores: np.ndarray
    kinds: np.ndarray  # the kind of each copy (a key of COPIES)
    nearest: np.ndarray
    sample: int  # sampled items that could be read
    copy_hash_bits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    copy_pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    nearest_pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


def copy_evidence(engine: Engine, sample: int = SAMPLE, seed: int = 0) -> CopyEvidence:
    """Copies of a seeded sample of the catalog embedded through the real pipeline, and the sample's nearest
    other items."""
    empty = CopyEvidence(np.zeros(0), np.zeros(0, str), np.zeros(0), 0)
    ids = engine.store.ids()
    chosen = np.random.default_rng(seed).choice(ids, size=min(sample, len(ids)), replace=False)
    records = engine.catalog.get_items(chosen.tolist())
    originals, copies, kinds, hash_bits, greys = [], [], [], [], []
    for record in (records[int(i)] for i in chosen if int(i) in records):
        try:
            image = decode_image(record.path)
        except ImageDecodeError:
            continue
        own = signature(image)
        for kind, make in COPIES.items():
            copy = make(image)
            originals.append(record)
            copies.append(_png(copy))
            kinds.append(kind)
            hash_bits.append(own.hash_distance(signature(copy)))
            greys.append((own.grey, grey_thumbnail(copy)))
    kept, vectors = readable_item_vectors(engine.featurizer, engine.head, list({r.id: r for r in originals}.values()))
    if len(kept) < 2:
        return empty
    by_id = {r.id: v for r, v in zip(kept, vectors, strict=True)}
    rows = [i for i, r in enumerate(originals) if r.id in by_id]
    step = engine.featurizer.batch_size
    copy_vectors = np.concatenate([engine.embed(engine.featurizer.features_of([copies[i] for i in rows[s : s + step]]))
                                   for s in range(0, len(rows), step)])
    copy_scores = np.einsum("ij,ij->i", copy_vectors, np.stack([by_id[originals[i].id] for i in rows]))
    hashes = {r.id: r.content_hash for r in kept}
    scores, neighbours = engine.store.search(vectors, 10)
    others = engine.catalog.get_items(int(n) for n in np.unique(neighbours) if n >= 0)
    nearest, nearest_pairs = [], []
    for record, row_scores, row_ids in zip(kept, scores, neighbours, strict=True):
        for score, other in zip(row_scores.tolist(), row_ids.tolist(), strict=True):
            if other in others and other != record.id and others[other].content_hash != hashes[record.id]:
                nearest.append(score)
                nearest_pairs.append((record, others[other]))
                break
    known = image_signatures(engine.catalog, [r for pair in nearest_pairs for r in pair])
    missing = Signature(0, b"")
    pair_greys = [(known.get(a.content_hash, missing).grey, known.get(b.content_hash, missing).grey)
                  for a, b in nearest_pairs]
    return CopyEvidence(copy_scores, np.array([kinds[i] for i in rows]), np.asarray(nearest), len(kept),
                        np.array([hash_bits[i] for i in rows]), _pixel_similarity([greys[i] for i in rows]),
                        _pixel_similarity(pair_greys))


def _pixel_similarity(pairs: list[tuple[bytes, bytes]]) -> np.ndarray:
    """Aligned pixel similarity of pairs of grey thumbnails; -1 where either is unknown."""
    out = np.full(len(pairs), -1.0, np.float32)
    known = [i for i, (a, b) in enumerate(pairs) if a and b]
    if known:
        out[known] = aligned_similarity([pairs[i][0] for i in known], [pairs[i][1] for i in known])
    return out


def calibrate_threshold(engine: Engine, sample: int = SAMPLE, seed: int = 0) -> DuplicateThreshold:
    """Fit the threshold on copies of a sample of the catalog (see the module docstring)."""
    model = DuplicateThreshold(engine.model_version, len(engine.store), 1.0, False, 1.0, 1.0, rule=RULE)
    evidence = copy_evidence(engine, sample, seed)
    if not evidence.sample:
        return model
    copy_scores = evidence.copy_scores
    model.copy_low = float(np.percentile(copy_scores, COPY_QUANTILE))
    distinct = evidence.nearest
    presumed_copies = distinct >= model.copy_low
    model.embedding_separable = bool(presumed_copies.mean() <= MAX_DUPLICATE_SHARE) if len(distinct) else True
    if model.embedding_separable:
        distinct = distinct[~presumed_copies]
    model.distinct_high = float(np.percentile(distinct, DISTINCT_QUANTILE)) if len(distinct) else -1.0
    model.copies = {k: round(float(np.percentile(copy_scores[evidence.kinds == k], COPY_QUANTILE)), 6)
                    for k in COPIES}
    threshold = (model.copy_low + model.distinct_high) / 2 if model.embedding_separable else model.distinct_high
    model.threshold = round(min(threshold, 1.0), 6)
    model.sample = evidence.sample
    found = is_copy(copy_scores, evidence.copy_hash_bits, evidence.copy_pixels, model.threshold,
                    nominated=np.ones(len(copy_scores), bool))
    model.copies_found = round(float(found.mean()), 4)
    model.nearest_matched = round(float((evidence.nearest_pixels >= PIXEL_MATCH).mean()), 4) if len(distinct) else 0.0
    model.separable = model.copies_found >= FOUND_SHARE
    if not model.separable:
        log.warning("copies and different items overlap (copies >= %.4f, different items <= %.4f; the rule finds "
                    "%.0f%% of copies): duplicate threshold %.4f catches only the closest copies", model.copy_low,
                    model.distinct_high, 100 * model.copies_found, model.threshold)
    return model


def load_or_calibrate_threshold(engine: Engine, path: Path) -> DuplicateThreshold:
    """The saved threshold for this model and roughly this catalog size, else a freshly calibrated one."""
    return load_or_fit(DuplicateThreshold, path, engine, calibrate_threshold)


@dataclass(frozen=True)
class DuplicateGroup:
    """Items that are near-identical to each other, lowest id first."""

    ids: list[int]
    min_score: float  # the weakest link that joined the group
    max_score: float


def check_threshold(threshold: float) -> None:
    if not 0.0 < threshold <= 1.0:
        raise InvalidRequestError(f"threshold must be in (0, 1], got {threshold}")


def candidate_floor(threshold: float, width: float = CANDIDATE_WIDTH) -> float:
    """The least similarity of a pair that other evidence than the embedding can make a duplicate."""
    return max(1.0 - width * (1.0 - threshold), 1e-6)


def is_copy(score: np.ndarray, hash_bits: np.ndarray, pixels: np.ndarray, threshold: float,
            nominated: np.ndarray) -> np.ndarray:
    """The rule of the module docstring, colours aside: which pairs of these similarities, hash distances and
    aligned pixel similarities are copies (``nominated``: one is among the other's PIXEL_NEIGHBOURS nearest)."""
    return ((score >= threshold)
            | ((score >= candidate_floor(threshold)) & (hash_bits <= HASH_DISTANCE))
            | (nominated & (score >= candidate_floor(threshold, PIXEL_WIDTH)) & (pixels >= PIXEL_MATCH)))


def find_duplicates(engine: Engine, threshold: float) -> list[DuplicateGroup]:
    """Groups of catalog items that are copies of each other (see the module docstring), largest group first."""
    check_threshold(threshold)
    floor = candidate_floor(threshold)
    pairs: list[np.ndarray] = []
    records = list(engine.catalog.iter_items())
    for start in range(0, len(records), BATCH):
        kept, vectors = readable_item_vectors(engine.featurizer, engine.head, records[start : start + BATCH])
        rows = engine.store.range_search(vectors, candidate_floor(threshold, PIXEL_WIDTH), limit=NEIGHBOURS + 1)
        for record, (scores, ids) in zip(kept, rows, strict=True):
            other = ids != record.id
            scores, ids = scores[other], ids[other]
            nominated = np.arange(len(ids)) < PIXEL_NEIGHBOURS
            keep = nominated | (scores >= floor)
            pairs.append(np.stack([np.minimum(ids, record.id), np.maximum(ids, record.id), scores, nominated])[:, keep])
    edges = np.concatenate(pairs, axis=1) if pairs else np.zeros((4, 0))
    if not edges.shape[1]:
        return []
    keys, first, which = np.unique(edges[:2].astype(np.int64), axis=1, return_index=True, return_inverse=True)
    nominated = np.zeros(keys.shape[1], bool)
    np.logical_or.at(nominated, which.ravel(), edges[3].astype(bool))
    src_ids, dst_ids, score = keys[0], keys[1], edges[2, first]
    by_id = {r.id: r for r in records}
    known = np.array([int(a) in by_id and int(b) in by_id for a, b in zip(src_ids, dst_ids, strict=True)])
    src_ids, dst_ids, score, nominated = src_ids[known], dst_ids[known], score[known], nominated[known]
    ends = [by_id[int(i)] for i in np.unique(np.r_[src_ids, dst_ids])]
    left, right = [by_id[int(i)] for i in src_ids], [by_id[int(i)] for i in dst_ids]
    duplicate = _agree(image_signatures(engine.catalog, ends), left, right, score, threshold, nominated)
    src_ids, dst_ids, score = src_ids[duplicate], dst_ids[duplicate], score[duplicate]
    if not len(src_ids):
        return []
    nodes = np.unique(np.concatenate([src_ids, dst_ids]))
    src, dst = np.searchsorted(nodes, src_ids), np.searchsorted(nodes, dst_ids)
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(len(nodes), len(nodes)))
    count, labels = connected_components(graph, directed=False)
    weakest, strongest = np.full(count, np.inf), np.full(count, -np.inf)
    np.minimum.at(weakest, labels[src], score)
    np.maximum.at(strongest, labels[src], score)
    order = np.argsort(labels, kind="stable")  # nodes are sorted, so each group's ids stay sorted
    members = np.split(nodes[order], np.flatnonzero(np.diff(labels[order])) + 1)
    groups = [DuplicateGroup(ids.tolist(), round(float(weakest[g]), 6), round(float(strongest[g]), 6))
              for g, ids in zip(np.unique(labels), members, strict=True)]
    return sorted(groups, key=lambda g: (-len(g.ids), g.ids[0]))


def _agree(signatures: dict[str, Signature], left: list[ItemRecord], right: list[ItemRecord], score: np.ndarray,
           threshold: float, nominated: np.ndarray | None = None) -> np.ndarray:
    """Which candidate pairs are duplicates: alike enough, or vouched for by the hash or the aligned pixels (see
    :func:`is_copy`), and of the same colours. A pair whose image can no longer be read is judged by its score
    alone."""
    missing = Signature(0, b"")
    a = [signatures.get(r.content_hash, missing) for r in left]
    b = [signatures.get(r.content_hash, missing) for r in right]
    known = np.array([x.colour != b"" and y.colour != b"" for x, y in zip(a, b, strict=True)])
    hashes = np.array([[x.phash, y.phash] for x, y in zip(a, b, strict=True)], np.uint64).reshape(-1, 2)
    bits = np.where(known, np.bitwise_count(hashes[:, 0] ^ hashes[:, 1]), HASH_DISTANCE + 1)
    colour = np.zeros(len(a))
    if known.any():
        grid = len(next(x.colour for x, ok in zip(a, known, strict=True) if ok))
        empty = bytes(grid)
        ca = np.frombuffer(b"".join(x.colour or empty for x in a), np.uint8).reshape(len(a), grid).astype(np.int16)
        cb = np.frombuffer(b"".join(y.colour or empty for y in b), np.uint8).reshape(len(b), grid).astype(np.int16)
        colour = np.abs(ca - cb).mean(axis=1) / 255.0
    same_colours = ~known | (colour <= COLOUR_DISTANCE)
    with_palettes = np.array([len(x.palette) > 0 and len(y.palette) > 0 for x, y in zip(a, b, strict=True)])
    if with_palettes.any():
        match = np.array([x.palette_vector() @ y.palette_vector() if ok else 1.0
                          for x, y, ok in zip(a, b, with_palettes, strict=True)])
        same_colours &= match >= PALETTE_MATCH
    nominated = np.zeros(len(a), bool) if nominated is None else nominated
    pixels = np.full(len(a), -1.0, np.float32)
    undecided = same_colours & nominated & ~is_copy(score, bits, pixels, threshold, nominated)
    undecided &= score >= candidate_floor(threshold, PIXEL_WIDTH)
    rows = np.flatnonzero(undecided)
    pixels[rows] = _pixel_similarity([(a[i].grey, b[i].grey) for i in rows])
    return same_colours & is_copy(score, bits, pixels, threshold, nominated)


_UNREADABLE: set[str] = set()  # content hashes whose image could not be read


def image_signatures(catalog: Catalog, records: list[ItemRecord]) -> dict[str, Signature]:
    """Signatures of the items' images by content hash: stored ones, the rest computed (and stored); an image that
    cannot be read is left out (and reported once per process, not at every search that meets it)."""
    stored = catalog.image_signatures(r.content_hash for r in records)
    out = {key: Signature(int(s.phash, 16), s.colour, s.palette, s.grey) for key, s in stored.items()}
    computed: dict[str, StoredSignature] = {}
    for record in records:
        if record.content_hash in out or record.content_hash in _UNREADABLE:
            continue
        try:
            found = signature(decode_image(record.path))
        except ImageDecodeError as exc:
            _UNREADABLE.add(record.content_hash)
            log.warning("no signature for item %d: %s", record.id, exc)
            continue
        out[record.content_hash] = found
        computed[record.content_hash] = StoredSignature(f"{found.phash:016x}", found.colour, found.palette,
                                                        found.grey)
    if computed:
        catalog.save_image_signatures(computed)
    return out


def collapse(vectors: np.ndarray, threshold: float, keep: int, palettes: np.ndarray | None = None) -> list[int]:
    """Positions of up to ``keep`` rows (best first) none of which is a duplicate of an earlier one kept:
    ``threshold``-alike and, where ``palettes`` are given (unit rows, see ``lookalike.signatures``), of the same
    colours (``PALETTE_MATCH``), so colour variants of one garment are all kept."""
    kept: list[int] = []
    for i in range(len(vectors)):
        if len(kept) == keep:
            break
        alike = vectors[kept] @ vectors[i] >= threshold
        if palettes is not None:
            alike &= palettes[kept] @ palettes[i] >= PALETTE_MATCH
        if not alike.any():
            kept.append(i)
    return kept

"""The search history's background writer: ids are final at once, nothing recorded is lost on a clean stop, writes
land within the flush interval, another process finds a search it was told of, and tastes add up."""

import time

import numpy as np
import pytest

from lookalike.bootstrap import open_engine
from lookalike.catalog.repository import Catalog
from lookalike.data.sources import open_source
from lookalike.history import SearchHistory
from lookalike.ingest import ingest
from lookalike.search import SearchService
from lookalike.taste import TasteProfiles


@pytest.fixture
def service(settings, catalog_dir):
    engine = open_engine(settings)
    ingest(engine, open_source(catalog_dir))
    yield SearchService(engine)
    engine.close()


def history_of(service: SearchService, flush_s: float = 0.2) -> SearchHistory:
    return SearchHistory(TasteProfiles(service), flush_s)


def found_for(service: SearchService, item: int):
    return service.search_vectors(service.item_vectors([item]), 3)[0]


def test_ids_come_at_once_and_a_clean_stop_writes_every_search(service):
    history = history_of(service, flush_s=30)  # nothing is written by time during this test
    item = service.engine.store.ids()[0]
    found = found_for(service, item)
    ids = [history.record(f"q{i}", 3, None, found, None) for i in range(40)]
    assert ids == sorted(ids) and len(set(ids)) == 40
    assert service.engine.catalog.count_searches() == 0  # queued, not written yet
    history.close()
    assert service.engine.catalog.count_searches() == 40
    stored = service.engine.catalog.search_vector(ids[-1])
    np.testing.assert_allclose(stored.vector, found.query, atol=1e-6)
    with pytest.raises(RuntimeError, match="closed"):
        history.record("late", 3, None, found, None)


def test_a_search_is_written_within_the_flush_interval_and_flush_waits_for_it(service):
    history = history_of(service, flush_s=0.2)
    found = found_for(service, service.engine.store.ids()[0])
    history.record("q", 3, None, found, None)
    time.sleep(0.6)
    assert service.engine.catalog.count_searches() == 1
    history.record("q2", 3, None, found, None)
    history.flush()
    assert service.engine.catalog.count_searches() == 2
    history.close()


def test_another_process_numbers_apart_and_finds_a_search_not_written_yet(service, settings):
    ours = history_of(service, flush_s=0.3)
    other_catalog = Catalog(settings.resolved_database_url)  # another process's connection
    theirs = SearchHistory(TasteProfiles(service), 0.3)
    theirs.catalog = other_catalog
    found = found_for(service, service.engine.store.ids()[0])
    mine, other = ours.record("a", 3, None, found, None), theirs.record("b", 3, None, found, None)
    assert mine != other
    started = time.monotonic()
    stored = theirs.stored_query(mine)  # numbered by us, written within our flush interval
    assert stored is not None and time.monotonic() - started < 1.0
    np.testing.assert_allclose(stored.vector, found.query, atol=1e-6)
    assert theirs.stored_query(10**9) is None  # never handed out: no wait
    ours.close()
    theirs.close()


def test_a_shoppers_searches_add_up_in_their_taste(service):
    history = history_of(service, flush_s=5)
    ids = service.engine.store.ids()
    found = [found_for(service, int(i)) for i in ids[:3]]
    for f in found:
        history.record("q", 3, None, f, "shopper-1")
    history.record("q", 3, None, found[0], "shopper-2", taste=False)  # a search made again: not in the taste
    history.flush()
    taste = history.tastes.describe("shopper-1")
    assert taste.searches == 3
    np.testing.assert_allclose(taste.vector, sum(f.query for f in found), atol=1e-5)
    assert history.tastes.describe("shopper-2").searches == 0
    seen = service.engine.catalog.shopper_items("shopper-1", ["seen"])
    assert seen == {h.id for f in found for h in f.hits}
    history.close()


def test_ids_skip_past_searches_stored_by_other_means(service):
    catalog = service.engine.catalog
    first = catalog.reserve_search_ids(4)
    catalog.record_search("by an older version", 3, None, 1.0, [])  # numbered through the reservation too
    from lookalike.catalog.models import Search

    with catalog.session() as session, session.begin():
        session.add(Search(id=first[-1] + 50, query="written directly", k=3, category=None, took_ms=1.0, results=[]))
    assert catalog.reserve_search_ids(2)[0] == first[-1] + 51

"""Ingest through the real pipeline (generated images, real backbone, FAISS, SQLite)."""

import shutil

import numpy as np
import pytest

from lookalike.data.sources import open_source
from lookalike.engine import head_path, open_engine
from lookalike.errors import ModelMismatchError
from lookalike.ingest import ingest, reindex

from imagegen import CATEGORIES, make_image


@pytest.fixture
def catalog_copy(tmp_path, catalog_dir):
    root = tmp_path / "catalog"
    shutil.copytree(catalog_dir, root)
    (root / "circles" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "stripes" / "empty.png").write_bytes(b"")
    return root


def test_ingest_adds_every_readable_image_and_reports_the_rest(settings, catalog_copy):
    engine = open_engine(settings)
    report = ingest(engine, open_source(catalog_copy))
    engine.close()
    assert report.added == 18 and report.seen == 20
    assert sorted(p.rsplit("/", 1)[1] for p, _ in report.failures) == ["broken.jpg", "empty.png"]
    assert all(reason for _, reason in report.failures)
    engine = open_engine(settings)
    assert engine.catalog.count() == 18 == len(engine.store)
    assert engine.store.category_counts() == {c: 6 for c in CATEGORIES}
    assert set(engine.store.ids().tolist()) == set(engine.catalog.ids())


def test_ingest_is_incremental(settings, catalog_copy):
    engine = open_engine(settings)
    ingest(engine, open_source(catalog_copy))
    again = ingest(engine, open_source(catalog_copy))
    assert again.added == 0 and again.already_present == 18
    make_image("checks", 500).save(catalog_copy / "checks" / "new.png")
    third = ingest(engine, open_source(catalog_copy))
    assert third.added == 1 and third.decoded == 1
    assert engine.catalog.count() == 19 == len(engine.store)


def test_interrupted_ingest_leaves_db_and_index_in_agreement_and_resumes(settings, catalog_copy, monkeypatch):
    engine = open_engine(settings)  # checkpoint_every=8, batch_size=8
    real_add = engine.store.add
    calls = {"n": 0}

    def crashing_add(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # after the first batch was saved, die between DB commit and index add
            raise KeyboardInterrupt("power cut")
        return real_add(*args, **kwargs)

    monkeypatch.setattr(engine.store, "add", crashing_add)
    with pytest.raises(KeyboardInterrupt):
        ingest(engine, open_source(catalog_copy))
    engine.catalog.close()  # the process dies: nothing else is saved
    monkeypatch.undo()

    reopened = open_engine(settings)  # reconciles on open
    db_ids = reopened.catalog.ids()
    assert 0 < len(db_ids) < 18  # two batches were committed to the database, the rest never got there
    assert sorted(reopened.store.ids().tolist()) == db_ids
    report = ingest(reopened, open_source(catalog_copy))
    assert report.added == 18 - len(db_ids) and report.already_present == len(db_ids)
    paths = [r.path for r in reopened.catalog.iter_items()]
    assert len(paths) == len(set(paths)) == 18 == len(reopened.store)


def test_index_entries_without_a_database_row_are_dropped_on_open(settings, catalog_copy):
    engine = open_engine(settings)
    ingest(engine, open_source(catalog_copy))
    doomed = engine.catalog.ids()[:3]
    engine.catalog.delete_items(doomed)  # e.g. a delete whose index save never happened
    engine.catalog.close()
    reopened = open_engine(settings)
    assert len(reopened.store) == 15 and not set(doomed) & set(reopened.store.ids().tolist())


def test_changed_head_refuses_old_index_until_reindexed_from_the_cache(settings, catalog_copy):
    from lookalike.embedding.head import fit_pca_head

    engine = open_engine(settings)
    ingest(engine, open_source(catalog_copy))
    cache = engine.featurizer.cache
    found, feats = cache.get([r.content_hash for r in engine.catalog.iter_items()])
    assert found.all()
    head = fit_pca_head(feats, engine.extractor.fingerprint, dim=8)
    head.save(head_path(settings.heads_dir, engine.extractor.name))
    engine.close()
    with pytest.raises(ModelMismatchError, match="--reindex"):
        open_engine(settings)
    fresh = open_engine(settings, fresh_index=True, reconcile=False)
    calls = []
    monkey_decoded = fresh.featurizer.iter_batches
    fresh.featurizer.iter_batches = lambda items, path_of: calls.append(list(items)) or monkey_decoded(items, path_of)
    report = reindex(fresh)
    assert report.added == 18 and not any(calls)  # nothing decoded again: all from the cache
    fresh.close()
    reopened = open_engine(settings)
    assert reopened.store.dim == 8 and len(reopened.store) == 18


def test_features_are_the_same_whether_cached_or_decoded(settings, catalog_copy):
    engine = open_engine(settings)
    ingest(engine, open_source(catalog_copy))
    record = next(iter(engine.catalog.iter_items()))
    _, cached = engine.featurizer.cache.get([record.content_hash])
    fresh = engine.featurizer.features_of([catalog_copy / record.path.split("catalog/", 1)[1]])
    assert np.allclose(cached, fresh, atol=2e-2 * np.abs(fresh).max())

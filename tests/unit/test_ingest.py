"""Ingest through the real pipeline (generated images, real backbone, FAISS, SQLite)."""

import shutil

import numpy as np
import pytest

from lookalike.bootstrap import head_path, open_engine
from lookalike.data.sources import open_source
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


def test_re_ingest_updates_what_changed_and_loses_nothing(settings, catalog_dir, tmp_path):
    """A changed price or item_id updates the item in place; new image bytes at a path, or a new category, replace
    it (new id, the old one gone from the index); an image gone bad keeps the item's last good image."""
    root = tmp_path / "shop"
    shutil.copytree(catalog_dir, root)
    images = sorted(p.relative_to(root) for p in root.rglob("*.png"))[:4]
    manifest = root / "manifest.csv"

    def write(rows: list[tuple[str, str, str, str]]) -> None:
        manifest.write_text("path,category,item_id,price\n" + "".join(",".join(r) + "\n" for r in rows))

    rows = [(str(p), p.parts[0], f"sku-{i}", "10") for i, p in enumerate(images)]
    write(rows)
    engine = open_engine(settings)
    first = ingest(engine, open_source(manifest))
    assert first.added == 4
    before = {r.path: r for r in engine.catalog.iter_items()}
    path_of = [str(root / p) for p in images]

    rows[0] = (rows[0][0], rows[0][1], rows[0][2], "12.5")  # new price
    rows[1] = (rows[1][0], rows[1][1], "sku-renamed", "10")  # new item_id
    rows[2] = (rows[2][0], "gowns", rows[2][2], "10")  # new category
    make_image("checks", 900).save(root / images[3])  # new bytes at the same path
    write(rows)
    again = ingest(engine, open_source(manifest))
    assert (again.added, again.updated, again.replaced, again.already_present) == (0, 2, 2, 0)
    after = {r.path: r for r in engine.catalog.iter_items()}
    assert after[path_of[0]].id == before[path_of[0]].id and after[path_of[0]].metadata["price"] in (12.5, "12.5")
    assert after[path_of[1]].id == before[path_of[1]].id and after[path_of[1]].item_id == "sku-renamed"
    for replaced in path_of[2:]:
        assert after[replaced].id != before[replaced].id
    assert after[path_of[3]].content_hash != before[path_of[3]].content_hash
    assert sorted(engine.store.ids().tolist()) == sorted(r.id for r in after.values()) and len(after) == 4
    assert engine.store.category_counts().get("gowns") == 1
    scores, ids = engine.store.search(engine.embed(engine.featurizer.features_of([root / images[3]])), 1)
    assert ids[0, 0] == after[path_of[3]].id and scores[0, 0] > 0.999  # the new photo's embedding, not the old
    assert ingest(engine, open_source(manifest)).already_present == 4  # nothing changed since

    (root / images[0]).write_bytes(b"not an image any more")
    broken = ingest(engine, open_source(manifest))
    assert [p for p, _ in broken.failures] == [path_of[0]] and broken.already_present == 3
    assert engine.catalog.get_item(after[path_of[0]].id) is not None  # its last good image stays searchable
    engine.close()

"""Concurrent searches share backbone passes and index scans and still get exactly their own results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from lookalike.api.main import create_app

from apiserver import ingested


def _search(client, path):
    response = client.post("/api/search", files={"file": (path.name, path.read_bytes(), "image/jpeg")},
                           data={"k": "5"})
    assert response.status_code == 200, response.text
    return [(r["id"], round(r["score"], 4)) for r in response.json()["results"]]


def test_concurrent_searches_match_sequential_ones(client, query_dir):
    queries = sorted(query_dir.rglob("*.jpg"))
    assert len(queries) >= 4
    sequential = [_search(client, q) for q in queries]
    assert len(client.app.state.lookalike.batchers) == 2  # backbone and index batching are on by default
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda q: _search(client, q), queries * 3))
    assert concurrent == sequential * 3



def test_the_first_search_finds_the_models_ready(settings, catalog_dir, query_dir, monkeypatch):
    """The server builds its models' ONNX Runtime sessions when it starts (importing onnx and building the head's
    graph took the first search about 0.7 s), so no search builds one."""
    import lookalike.backbone.runtime
    import lookalike.embedding.head
    from lookalike.bootstrap import head_path, open_engine
    from lookalike.embedding.head import fit_pca_head
    from lookalike.ingest import reindex

    engine = open_engine(ingested(settings, catalog_dir))
    _, features = engine.featurizer.cache.get([r.content_hash for r in engine.catalog.iter_items()])
    fit_pca_head(features, engine.extractor.fingerprint, dim=8).save(
        head_path(settings.heads_dir, engine.extractor.name))
    engine.close()
    engine = open_engine(settings, fresh_index=True, reconcile=False)
    reindex(engine)
    engine.close()
    built = []
    for module in (lookalike.embedding.head, lookalike.backbone.runtime):
        original = module.cpu_session
        monkeypatch.setattr(module, "cpu_session", lambda *args, _original=original: built.append(args) or
                            _original(*args))
    with TestClient(create_app(settings)) as client:
        assert client.app.state.lookalike.engine.head.weights  # a trained head, with a session to build
        started = len(built)
        assert started > 0
        _search(client, sorted(query_dir.rglob("*.jpg"))[0])
        assert len(built) == started

"""Concurrent searches share backbone passes and index scans and still get exactly their own results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


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

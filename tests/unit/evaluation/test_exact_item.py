"""The exact-item metric on hand-computed cases."""

import numpy as np

from lookalike.evaluation.metrics import exact_item_metrics


def unit(*rows):
    x = np.array(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_ranks_recall_and_spread_by_hand():
    gallery = unit([1, 0], [0.8, 0.6], [0, 1], [-1, 0])
    items = np.array([10, 11, 12, 13])
    # query 0 is nearest item 10 (rank 1); query 1 is nearest 12, then 11 (its item: rank 2);
    # query 2 is item 13, the farthest of four (rank 4)
    queries = unit([1, 0.05], [0.3, 1], [1, 0])
    figures = exact_item_metrics(queries, np.array([10, 11, 13]), gallery, items)
    assert figures["recall@1"] == 1 / 3
    assert figures["recall@5"] == 1.0 and figures["recall@10"] == 1.0
    assert figures["median rank"] == 2 and figures["mean rank"] == (1 + 2 + 4) / 3
    expected = np.mean([(queries[i] @ gallery.T).max() - (queries[i] @ gallery.T).min() for i in range(3)])
    assert np.isclose(figures["score spread@10"], expected)  # 4 gallery rows: top 1 minus the 4th
    assert figures["queries"] == 3


def test_any_image_of_the_item_counts_and_a_missing_item_ranks_last():
    gallery = unit([1, 0], [0, 1], [0.6, 0.8])
    items = np.array([1, 2, 2])  # item 2 has two images
    figures = exact_item_metrics(unit([0.5, 0.86], [1, 0]), np.array([2, 99]), gallery, items)
    assert figures["recall@1"] == 0.5  # the first finds item 2's second image first
    assert figures["mean rank"] == (1 + 4) / 2  # 99 is not in the gallery: rank len + 1

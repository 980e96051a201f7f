import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from lookalike.evaluation.metrics import retrieval_metrics


def ranked_gallery(order_labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """A gallery whose similarity to the query vector e0 decreases in the given label order."""
    n = len(order_labels)
    angles = np.linspace(0.1, 1.5, n)  # increasing angle from e0 -> decreasing cosine
    gallery = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    return gallery, np.array(order_labels)


def test_hand_computed_single_query():
    # ranked relevance: 1 0 1 0 0 0 0 0 0 0 0 1  (R = 3 relevant items of label 7)
    order = [7, 1, 7, 1, 1, 1, 1, 1, 1, 1, 1, 7]
    gallery, labels = ranked_gallery(order)
    m = retrieval_metrics(np.array([[1.0, 0.0]], np.float32), np.array([7]), gallery, labels).overall
    assert m["precision@1"] == 1.0
    assert m["recall@1"] == m["recall@5"] == 1.0
    assert m["precision@5"] == pytest.approx(2 / 5)
    assert m["precision@10"] == pytest.approx(2 / 10)
    assert m["mAP@10"] == pytest.approx((1 / 1 + 2 / 3) / 3)  # min(10, R) = 3
    assert m["MAP@R"] == pytest.approx((1 / 1 + 2 / 3) / 3)  # first R = 3 results: ranks 1 and 3
    assert m["R-precision"] == pytest.approx(2 / 3)
    dcg = 1 + 1 / np.log2(4)
    idcg = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert m["NDCG@10"] == pytest.approx(dcg / idcg)


def test_miss_at_top_one_and_confusion_matrix():
    order = [2, 2, 5, 5, 5]
    gallery, labels = ranked_gallery(order)
    m = retrieval_metrics(np.array([[1.0, 0.0]], np.float32), np.array([5]), gallery, labels,
                          query_categories=["five"], gallery_categories=["two", "two", "five", "five", "five"])
    assert m.overall["precision@1"] == 0.0 and m.overall["recall@1"] == 0.0
    assert m.overall["recall@5"] == 1.0
    assert m.categories == ["five", "two"]
    assert m.confusion.tolist() == [[0, 1], [0, 0]]
    assert m.per_category["five"]["queries"] == 1


def test_agrees_with_pytorch_metric_learning_accuracy_calculator():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((5, 16))
    def sample(n):
        labels = rng.integers(0, 5, n)
        x = centres[labels] + 1.2 * rng.standard_normal((n, 16))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels
    queries, q_labels = sample(200)
    gallery, g_labels = sample(600)
    ours = retrieval_metrics(queries, q_labels, gallery, g_labels).overall
    calc = AccuracyCalculator(include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
                              k="max_bin_count", device=torch.device("cpu"))
    theirs = calc.get_accuracy(torch.from_numpy(queries), torch.from_numpy(q_labels), torch.from_numpy(gallery),
                               torch.from_numpy(g_labels), ref_includes_query=False)
    assert ours["precision@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-9)
    assert ours["R-precision"] == pytest.approx(theirs["r_precision"], abs=1e-9)
    assert ours["MAP@R"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-9)


def test_per_category_rows_average_to_overall_weighted_by_queries():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.arange(60) % 3
    m = retrieval_metrics(x[:20], labels[:20], x[20:], labels[20:])
    weighted = sum(row["precision@1"] * row["queries"] for row in m.per_category.values()) / 20
    assert weighted == pytest.approx(m.overall["precision@1"])
    assert m.confusion.sum() == 20
    assert m.curve["recall"] == sorted(m.curve["recall"])  # recall@K never decreases with K

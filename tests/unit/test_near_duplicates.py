import numpy as np
import pytest

from lookalike.duplicates import check_threshold, collapse
from lookalike.errors import InvalidRequestError


def test_collapse_keeps_the_best_of_each_near_duplicate_set_in_order():
    a, b, c = np.eye(3, dtype=np.float32)
    a_copy = (a + 0.05 * b) / np.linalg.norm(a + 0.05 * b)
    rows = np.stack([a, a_copy, b, a, c])
    assert collapse(rows, 0.95, keep=5) == [0, 2, 4]
    assert collapse(rows, 0.95, keep=2) == [0, 2]
    assert collapse(rows, 1.01, keep=5) == [0, 1, 2, 3, 4]  # nothing is that alike: all kept
    assert collapse(rows[:0], 0.9, keep=3) == []


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.2])
def test_threshold_must_be_a_positive_similarity(bad):
    with pytest.raises(InvalidRequestError):
        check_threshold(bad)

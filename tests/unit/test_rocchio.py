import numpy as np

from lookalike.refine import ALPHA, BETA, GAMMA, rocchio


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, np.float32)
    return v / np.linalg.norm(v)


def test_rocchio_moves_toward_likes_and_away_from_dislikes_and_stays_unit_length():
    query, liked, disliked = unit(1, 0, 0), np.stack([unit(0, 1, 0), unit(0, 1, 1)]), unit(0, 0, 1)[None, :]
    refined = rocchio(query, liked, disliked)
    expected = ALPHA * query + BETA * liked.mean(axis=0) - GAMMA * disliked.mean(axis=0)
    assert refined.shape == (1, 3)
    assert np.allclose(refined[0], expected / np.linalg.norm(expected), atol=1e-6)
    assert refined[0] @ unit(0, 1, 0) > query @ unit(0, 1, 0)
    likes_only = rocchio(query, liked, np.zeros((0, 3), np.float32))
    assert refined[0] @ unit(0, 0, 1) < likes_only[0] @ unit(0, 0, 1)


def test_rocchio_without_feedback_is_the_query():
    query = unit(3, 4, 0)
    empty = np.zeros((0, 3), np.float32)
    assert np.allclose(rocchio(query, empty, empty)[0], query)

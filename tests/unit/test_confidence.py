import numpy as np
import pytest

from lookalike.confidence import ConfidenceModel, fit_logistic


def test_logistic_fit_recovers_the_generating_curve():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(6 * x - 1)))).astype(float)
    slope, intercept = fit_logistic(x, y)
    assert slope == pytest.approx(6, rel=0.1) and intercept == pytest.approx(-1, abs=0.15)


def test_model_is_monotone_in_score_and_bounded(tmp_path):
    model = ConfidenceModel("m", 10, slope=8.0, intercept=-4.0)
    values = model(np.linspace(-1, 1, 50))
    assert (np.diff(values) > 0).all() and values.min() >= 0 and values.max() <= 1
    model.save(tmp_path / "c.json")
    assert ConfidenceModel.load(tmp_path / "c.json") == model
    assert ConfidenceModel.load(tmp_path / "missing.json") is None


def test_uncategorized_catalog_uses_the_empirical_rank():
    model = ConfidenceModel("m", 10, quantiles=[0.1, 0.5, 0.9])
    assert model(np.array([0.0, 0.5, 1.0])).tolist() == [0.0, 0.5, 1.0]

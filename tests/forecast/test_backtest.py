import numpy as np
import pytest

from deepstrata.data.sources import read_table
from deepstrata.forecast import windows as win
from deepstrata.forecast.backtest import (
    backtest,
    cutoffs,
    seasonal_naive,
    seasonal_naive_forecaster,
    window_scores,
)


def test_cutoffs_are_a_horizon_apart_and_end_a_horizon_early():
    assert cutoffs(100, 10, 3) == [70, 80, 90]


def test_scores_of_a_perfect_and_a_naive_forecast():
    history = np.tile(np.arange(12.0), 4) + np.repeat(np.arange(4.0), 12)
    actual = np.arange(12.0) + 4
    perfect = np.stack([actual - 1, actual, actual + 1], axis=1)
    scores = window_scores(actual, perfect, [0.1, 0.5, 0.9], history, 12)
    assert scores["mase"] == 0 and scores["smape"] == 0 and scores["covered"] == 1
    naive = seasonal_naive(history, 12, 12)
    assert np.abs(actual - naive).mean() == 1.0  # the last season repeated: one level behind
    summary, _rows = backtest(
        [history],
        seasonal_naive_forecaster([history], horizon=12, season=12, quantiles=[0.1, 0.5, 0.9]),
        horizon=12,
        count=2,
        quantiles=[0.1, 0.5, 0.9],
        season=12,
    )
    assert summary["windows"] == 2 and summary["mase"] == pytest.approx(1.0)


def test_no_leak_values_after_the_cutoff_change_nothing(forecaster, panel_csv):
    """Every target after the cut-off replaced (and the known-ahead covariates past the
    horizon, which a forecast may read up to its last step): the forecasts stay the same."""
    panel = win.read_panel(read_table(panel_csv), forecaster.spec)
    ends = [len(s.values) - 10 for s in panel.series]
    before = forecaster.forecast_panel(panel, ends)
    rng = np.random.default_rng(1)
    for series, end in zip(panel.series, ends, strict=True):
        series.values = series.values.copy()
        series.values[end:] = rng.normal(1000, 50, len(series.values) - end)
        series.known = series.known.copy()
        ahead = end + forecaster.spec.horizon
        series.known[ahead:] = rng.normal(size=series.known[ahead:].shape)
    after = forecaster.forecast_panel(panel, ends)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)

import numpy as np
import pytest

from deepstrata.forecast.baselines import compare_baselines


def seasonal(length: int = 96) -> np.ndarray:
    steps = np.arange(length)
    return 50 + 10 * np.sin(2 * np.pi * steps / 12) + np.random.default_rng(0).normal(0, 1, length)


def test_lightgbm_on_lags_on_a_seasonal_series():
    results = compare_baselines(
        [seasonal()],
        names=("seasonal_naive", "lightgbm"),
        horizon=6,
        count=2,
        quantiles=[0.1, 0.5, 0.9],
        season=12,
        lookback=12,
        frequency="MS",
    )
    assert results["lightgbm"]["windows"] == 2 and np.isfinite(results["lightgbm"]["mase"])


@pytest.mark.slow
def test_statsforecast_models_on_a_seasonal_series():
    pytest.importorskip("statsforecast")
    steps = np.arange(96)
    series = 50 + 10 * np.sin(2 * np.pi * steps / 12) + np.random.default_rng(0).normal(0, 1, 96)
    results = compare_baselines(
        [series],
        names=("ets", "arima", "theta"),
        horizon=6,
        count=2,
        quantiles=[0.1, 0.5, 0.9],
        season=12,
        lookback=12,
        frequency="MS",
    )
    assert set(results) == {"ets", "arima", "theta"}
    for figures in results.values():
        assert figures["windows"] == 2 and np.isfinite(figures["mase"]) and figures["seconds"] >= 0

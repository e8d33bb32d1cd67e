"""The forecaster on real series shipped in statsmodels (co2: Mauna Loa monthly CO2,
1958-2001; sunspots: yearly sunspot numbers, 1700-2008), 6 rolling-origin cut-offs each."""

import pandas as pd
import pytest

from deepstrata.config import FitConfig
from deepstrata.forecast.fit import fit_forecaster

sm = pytest.importorskip("statsmodels.api")


def co2():
    data = sm.datasets.co2.load_pandas().data.resample("MS").mean().reset_index()
    return data.rename(columns={"index": "date"}), "co2", 12


def sunspots():
    data = sm.datasets.sunspots.load_pandas().data
    dates = pd.to_datetime(data.YEAR.astype(int).astype(str))
    return pd.DataFrame({"date": dates, "spots": data.SUNACTIVITY}), "spots", 10


@pytest.mark.slow
def test_beats_seasonal_naive_on_two_real_series_with_calibrated_intervals():
    covered, windows = [], []
    for load in (co2, sunspots):
        frame, target, horizon = load()
        cfg = FitConfig(
            target=target, time="date", horizon=horizon, backtests=6, max_epochs=60, seed=0
        )
        backtest = fit_forecaster(frame, cfg, progress=False, final=False).metrics["backtest"]
        print(load.__name__, backtest)
        assert backtest["network"]["mase"] < backtest["seasonal_naive"]["mase"]
        covered.append(backtest["network"]["coverage"] * backtest["network"]["windows"] * horizon)
        windows.append(backtest["network"]["windows"] * horizon)
    pooled = sum(covered) / sum(windows)
    assert 0.75 <= pooled <= 0.85, pooled

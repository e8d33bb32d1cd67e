"""The forecaster on real series shipped in statsmodels (co2: Mauna Loa monthly CO2,
1958-2001; sunspots: yearly sunspot numbers, 1700-2008), 6 rolling-origin cut-offs each,
alone and as an ensemble with the best of seasonal naive, ETS, Theta and LightGBM (ARIMA
left out here: AutoARIMA alone takes minutes on co2's 6 cut-offs; bench/forecast.py has it)."""

import pandas as pd
import pytest

from deepstrata.config import FitConfig
from deepstrata.forecast.fit import fit_forecaster

sm = pytest.importorskip("statsmodels.api")
BASELINES = "seasonal_naive,ets,theta,lightgbm"


def co2():
    data = sm.datasets.co2.load_pandas().data.resample("MS").mean().reset_index()
    return data.rename(columns={"index": "date"}), "co2", 12


def sunspots():
    data = sm.datasets.sunspots.load_pandas().data
    dates = pd.to_datetime(data.YEAR.astype(int).astype(str))
    return pd.DataFrame({"date": dates, "spots": data.SUNACTIVITY}), "spots", 10


def backtest_of(load, **options):
    frame, target, horizon = load()
    cfg = FitConfig(
        target=target, time="date", horizon=horizon, backtests=6, max_epochs=60, seed=0, **options
    )
    model = fit_forecaster(frame, cfg, progress=False, final=False)
    return model.metrics["backtest"], model.metrics["ensemble"]


@pytest.mark.slow
@pytest.mark.parametrize("load", [co2, sunspots])
def test_beats_seasonal_naive_on_real_series_with_calibrated_intervals(load):
    backtest, ensemble = backtest_of(load, ensemble=True, baselines=BASELINES)
    for name in ("network", ensemble["baseline"], "seasonal_naive", "ensemble"):
        figures = backtest[name]
        print(
            f"{load.__name__} {name}: MASE {figures['mase']:.3f} coverage {figures['coverage']:.3f}"
        )
    print(load.__name__, {k: v for k, v in ensemble.items() if k != "curve"})
    assert backtest["network"]["mase"] < backtest["seasonal_naive"]["mase"]
    assert backtest["ensemble"]["mase"] < backtest["seasonal_naive"]["mase"]
    assert 0.75 <= backtest["network"]["coverage"] <= 0.85, backtest["network"]["coverage"]

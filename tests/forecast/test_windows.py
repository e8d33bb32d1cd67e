import numpy as np
import pandas as pd
import pytest

from deepstrata.config import FitConfig
from deepstrata.data.sources import read_table
from deepstrata.errors import ConfigError, DataError
from deepstrata.forecast import windows as win
from deepstrata.forecast.fit import make_spec
from tests.forecast.conftest import tiny_panel

CFG = {"target": "units", "time": "date", "series": "store", "horizon": 6}


def test_ragged_series_and_gaps_are_filled_and_reported():
    frame = tiny_panel().iloc[5:].reset_index(drop=True)  # store a starts later: ragged
    table = read_table(frame)
    spec = make_spec(table, FitConfig(**CFG))
    spec.lookback = 12
    panel = win.read_panel(table, spec)
    assert panel.report["ragged"] and panel.report["inserted_timestamps"] == 1
    assert not np.isnan(panel.series[0].values).any()
    train, _train_y, valid, _valid_y = win.training_windows(panel, spec)
    assert train[0]["history"].shape == (12,) and train[0]["covariates"].shape[0] == 18
    assert len(valid) == 2 * 7  # two horizons of validation origins per series


def test_duplicate_timestamps_are_named():
    frame = tiny_panel()
    frame = pd.concat([frame, frame.iloc[[3]]], ignore_index=True)
    with pytest.raises(DataError, match=r"row \d+.*appears twice of series a"):
        make_spec(read_table(frame), FitConfig(**CFG))


def test_a_time_that_does_not_parse_names_its_line(tmp_path):
    frame = tiny_panel()
    frame["date"] = frame["date"].astype(str)
    frame.loc[7, "date"] = "soon"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"line 9 \(row 8\), column 'date': 'soon' is not a date"):
        make_spec(read_table(path), FitConfig(**CFG))


def test_options_go_with_time():
    with pytest.raises(ConfigError, match="--horizon"):
        FitConfig(target="y", time="date")
    with pytest.raises(ConfigError, match="--series: is for forecasting"):
        FitConfig(target="y", series="store")
    with pytest.raises(ConfigError, match="--task: a forecast needs the time column"):
        FitConfig(target="y", task="forecast")
    with pytest.raises(ConfigError, match="--baselines: chooses --ensemble's baselines"):
        FitConfig(target="y", time="d", horizon=2, baselines="ets")
    assert FitConfig(target="y", time="d", horizon=2, ensemble=True).ensemble
    assert FitConfig(target="y", time="d", horizon=2, quantiles=[0.9, 0.1]).quantiles == [
        0.1,
        0.5,
        0.9,
    ]


def test_past_covariates_are_read_over_the_lookback_only():
    table = read_table(tiny_panel())
    spec = make_spec(table, FitConfig(**CFG, past_covariates="promo"))
    assert (spec.known, spec.past) == ([], ["promo"])
    spec.lookback = 12
    window = win.window_inputs(win.read_panel(table, spec).series[0], 30, spec)
    assert window["past"].shape == (12, 1) and window["covariates"].shape == (18, 3)


@pytest.mark.parametrize("frequency, width", [("MS", 2), ("D", 4), ("h", 6), ("YS", 0)])
def test_calendar_features_follow_the_frequency(frequency, width):
    """Month of year, weekday and hour as sine/cosine pairs; daily and hourly series go
    through pandas' weekday without its deprecation warning (an error under pytest)."""
    times = pd.date_range("2021-01-04", periods=30, freq=frequency)
    features = win.calendar(times, frequency)
    assert features.shape == (30, width)
    if frequency == "D":  # the weekday's cycle: 7 days apart, the same features
        np.testing.assert_allclose(features[0, 1], features[7, 1], atol=1e-12)

"""One-step residuals out of sample: a cut series keeps its own steps, the windows read
only values before their step (changing later values changes no forecast), and the
residuals are in interval units with a floor on calm windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepstrata.forecast import residuals as res
from deepstrata.forecast import windows as win

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def panel_of(values: np.ndarray) -> tuple[win.Panel, win.Spec]:
    frame = pd.DataFrame(
        {"day": pd.date_range("2000-01-01", periods=len(values), freq="MS"), "y": values}
    )
    from deepstrata.data.sources import read_table

    spec = win.Spec(target="y", time="day", series=[], frequency="MS", horizon=1, lookback=8)
    return win.read_panel(read_table(frame), spec), spec


def test_cut_windows_and_out_of_sample_forecasts():
    values = np.sin(np.arange(80) / 3.0) + np.random.default_rng(0).normal(0, 0.1, 80)
    panel, spec = panel_of(values)
    half = res.cut(panel, [40], [80])
    assert half.series[0].values.tolist() == values[40:].tolist()
    assert half.series[0].times[0] == pd.Timestamp("2003-05-01")
    train, train_y, valid, _ = res.windows(half, spec)
    assert len(train) + len(valid) == 40 - 8 and len(valid) == 6
    assert train_y[0].tolist() == [values[48]]
    network, architecture, facts = res.train_one_step(
        half, spec, res.Settings(hidden_dim=8, max_epochs=2)
    )
    assert architecture["horizon"] == 1 and facts["epochs"] <= 2
    origins = np.array([20, 30])
    before = res.forecasts(network, spec, panel.series[0], origins)
    later = values.copy()
    later[30:] += 100.0  # values from step 30 on: the forecast at 30 must not move
    after = res.forecasts(network, spec, panel_of(later)[0].series[0], origins)
    np.testing.assert_allclose(before, after)
    assert before.shape == (2, 3) and (np.diff(before, axis=1) >= 0).all()


def test_residuals_are_in_interval_units_with_a_floor():
    forecast = np.array([[-1.2816, 0.0, 1.2816], [0.0, 0.0, 0.0], [-1.2816, 0.0, 1.2816]])
    z, median = res.interval_units(np.array([2.0, 1.0, 0.0]), forecast)
    assert median == pytest.approx(1.0, rel=1e-4)
    assert z[0] == pytest.approx(2.0, rel=1e-4) and z[2] == 0.0
    assert z[1] == pytest.approx(1.0 / (res.WIDTH_FLOOR * median))  # a zero-width interval: floored
    z, _ = res.interval_units(np.array([2.0, 1.0, 0.0]), forecast, floor=2.0)
    assert z[1] == pytest.approx(1.0 / (2.0 * res.WIDTH_FLOOR))

"""The conformal widening: the finite-sample quantile, and calibration windows that grow
cut-off by cut-off with the windows whose actuals are known by then."""

import numpy as np

from deepstrata.data.sources import read_table
from deepstrata.forecast import conformal
from deepstrata.forecast import windows as win


def test_widening_is_the_corrected_quantile():
    scores = np.arange(1.0, 10.0)  # 9 scores: ceil(10 * 0.8) / 9 -> the 8th of 9
    assert conformal.widening(scores, 0.8) == np.quantile(scores, 8 / 9)
    assert conformal.widening(scores, 0.95) == 9.0  # beyond the data: the largest
    assert conformal.widening(np.array([]), 0.8) == 0.0


def test_the_first_cutoff_is_calibrated_on_the_validation_windows(forecaster, panel_csv):
    spec, count, horizon = forecaster.spec, 2, forecaster.spec.horizon
    panel = win.read_panel(read_table(panel_csv), spec)
    first = [len(s.values) - count * horizon for s in panel.series]
    widenings, scores = conformal.sequential_widenings(
        forecaster.network, panel, spec, first, count, 0.8
    )
    _, _, valid, valid_y = win.training_windows(panel, spec, end=first)
    own = conformal.scores(forecaster.network, *win.stack(valid, valid_y))
    assert widenings[0] == conformal.widening(own, 0.8)
    windows_per_series = [len(s.values) - f + horizon + 1 for s, f in zip(panel.series, first)]
    assert len(scores) == sum(windows_per_series)  # 2 horizons before the first cut-off on
    # the second cut-off: the windows ending by it, 2 horizons + 1 per series (one more
    # horizon of them than the first), each series' windows in a row
    start = np.cumsum([0, *windows_per_series[:-1]])
    known = np.concatenate([scores[s : s + 2 * horizon + 1] for s in start])
    assert widenings[1] == conformal.widening(known, 0.8)

"""How far a forecaster's outer quantiles move out so that its intervals cover as they say:
conformalized quantile regression (Romano et al. 2019) on the windows a network did not
train on, in window-scaled units (one figure for every step and series).

A window's **score** is how far its actuals fall outside the outer quantiles at their
worst step (``max(low - y, y - high)``, negative inside), per step; the widening is the
scores' quantile at the nominal coverage with the ``(n + 1) / n`` finite-sample
correction. The pinball-trained quantiles are too narrow on windows they were fitted on,
and a network's few validation windows (the last two horizons before its training ends)
are too few, and too alike, to fix a quantile on: on co2 and sunspots they gave 0.76 and
0.92 for a nominal 0.80 over 6 cut-offs.

So the calibration windows grow with time, as they would in use (sequential split
conformal, as in Xu & Xie's EnbPI and Gibbs & Candès' adaptive conformal inference, here
without refitting): at each backtest cut-off, every window of the backtest network whose
actuals are all known by then — its validation windows, and the windows of the earlier
cut-offs' periods, which it never trained on — calibrates. The final network (trained on
everything) is calibrated on its own validation windows and on every backtest-period
window of the backtest network: all the out-of-sample windows the fit has.
"""

from __future__ import annotations

import numpy as np
import torch

from deepstrata.forecast import windows as win


def scores(network, inputs: dict, target: torch.Tensor) -> np.ndarray:
    """``(V, H)``: per window and step, how far the actual falls outside the outer
    quantiles (scaled units; negative inside)."""
    with torch.no_grad():
        output = network(inputs).double().numpy()  # (V, H, Q)
    actual = target.double().numpy()
    return np.maximum(output[..., 0] - actual, actual - output[..., -1])


def widening(values: np.ndarray, nominal: float) -> float:
    """The scores' quantile at ``nominal`` with the finite-sample correction (0 for none)."""
    values = np.asarray(values, dtype=float).ravel()
    if not len(values):
        return 0.0
    level = min(1.0, np.ceil((len(values) + 1) * nominal) / len(values))
    return float(np.quantile(values, level))


def calibration_windows(panel, spec, first: list[int]) -> tuple[list[dict], list, np.ndarray]:
    """Every window from two horizons before each series' first cut-off to its end: the
    backtest network's validation windows and the backtest period's. Returns the windows,
    their targets, and each one's last step + 1 (when its actuals are all known)."""
    windows, targets, known = [], [], []
    for series, start in zip(panel.series, first, strict=True):
        length = len(series.values)
        for origin in range(
            max(spec.lookback, start - 2 * spec.horizon), length - spec.horizon + 1
        ):
            windows.append(win.window_inputs(series, origin, spec))
            targets.append(series.values[origin : origin + spec.horizon])
            known.append((origin + spec.horizon, length))
    return windows, targets, np.asarray(known)


def sequential_widenings(
    network, panel, spec, first: list[int], count: int, nominal: float
) -> tuple[list[float], np.ndarray]:
    """(the widening at each of ``count`` cut-offs, the scores of every calibration
    window): at cut-off ``k`` the windows whose actuals end by each series' ``k``-th
    cut-off (:func:`deepstrata.forecast.backtest.cutoffs`) calibrate."""
    windows, targets, known = calibration_windows(panel, spec, first)
    if not windows:
        return [0.0] * count, np.zeros((0, spec.horizon))
    all_scores = scores(network, *win.stack(windows, targets))
    ends, lengths = known[:, 0], known[:, 1]
    widenings = []
    for k in range(count):
        cutoff = lengths - spec.horizon * (count - k)  # each window's series' k-th cut-off
        widenings.append(widening(all_scores[ends <= cutoff], nominal))
    return widenings, all_scores

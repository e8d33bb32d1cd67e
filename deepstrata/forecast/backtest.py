"""Rolling-origin backtests and the figures forecasts are judged by.

A backtest cuts every series at ``count`` origins a horizon apart, the last one a horizon
before its end (counted from each series' own end, so ragged series are cut alike); a
forecaster sees only the values before a cut-off and is scored on the horizon after it.
Never a random split: a window's future must not leak into its past.

Figures per window, then over all windows (series x cut-offs):

- **MASE**: mean absolute error over the in-sample seasonal naive's (M4's scale);
- **RMSSE**: root mean squared error over the one-step naive's (M5's scale);
- **sMAPE**: in percent (M4's);
- **WQL**: weighted quantile loss, 2 x pinball summed over steps and quantiles over
  (Q x the sum of |actual|) (as GluonTS and the Chronos paper report it);
- **coverage**: the share of actuals between the lowest and highest quantile forecast,
  beside its nominal value (0.8 for 0.1 and 0.9).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepstrata.tasks.forecast import smape

# forecaster(histories cut at ``ends``) -> per series, (H, Q) quantile forecasts
Forecaster = Callable[[list[int]], list[np.ndarray]]


def cutoffs(length: int, horizon: int, count: int) -> list[int]:
    """The ``count`` cut-off indices of a series of ``length`` steps, earliest first."""
    return [length - horizon * (count - k) for k in range(count)]


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The last season repeated (the last value when the history is shorter than a season)."""
    season = season if len(history) >= season else 1
    last = history[-season:]
    return np.resize(last, horizon) if season > 1 else np.full(horizon, history[-1])


def naive_scale(history: np.ndarray, lag: int, power: int) -> float:
    """Mean of |history[t] - history[t - lag]| ** power (lag 1 when the history is short)."""
    lag = lag if len(history) > lag else 1
    difference = np.abs(history[lag:] - history[:-lag]) ** power
    scale = float(difference.mean()) if len(difference) else 0.0
    return scale if scale > 0 else 1e-8


def window_scores(
    actual: np.ndarray,
    forecast: np.ndarray,
    quantiles: list[float],
    history: np.ndarray,
    season: int,
) -> dict[str, float]:
    """One window's figures; ``forecast`` is ``(H, Q)``, the median at 0.5's column."""
    median = forecast[:, quantiles.index(0.5)]
    error = actual - median
    levels = np.asarray(quantiles)
    below = actual[:, None] - forecast  # (H, Q)
    pinball = np.maximum(levels * below, (levels - 1) * below)
    return {
        "mase": float(np.abs(error).mean() / naive_scale(history, season, 1)),
        "rmsse": float(np.sqrt((error**2).mean() / naive_scale(history, 1, 2))),
        "smape": smape(actual, median),
        "pinball_sum": float(2 * pinball.sum()),
        "abs_sum": float(np.abs(actual).sum()),
        "covered": float(((actual >= forecast[:, 0]) & (actual <= forecast[:, -1])).mean()),
    }


def summarise(rows: list[dict], quantiles: list[float]) -> dict[str, float]:
    """The windows' figures as one line: means, WQL over every window, coverage."""
    mean = {name: float(np.mean([r[name] for r in rows])) for name in ("mase", "rmsse", "smape")}
    total = sum(r["abs_sum"] for r in rows) * len(quantiles)
    mean["wql"] = float(sum(r["pinball_sum"] for r in rows) / max(total, 1e-12))
    mean["coverage"] = float(np.mean([r["covered"] for r in rows]))
    mean["nominal_coverage"] = round(quantiles[-1] - quantiles[0], 6)
    mean["windows"] = len(rows)
    return mean


def backtest(
    values: list[np.ndarray],
    forecaster: Forecaster,
    *,
    horizon: int,
    count: int,
    quantiles: list[float],
    season: int,
) -> tuple[dict[str, float], list[dict]]:
    """Score ``forecaster`` at ``count`` rolling origins of every series in ``values``.

    Returns the summary and one record per window (series index, cut-off, figures,
    forecast), the records a report draws from."""
    rows = []
    for k in range(count):
        ends = [cutoffs(len(v), horizon, count)[k] for v in values]
        forecasts = forecaster(ends)
        for index, (series, end, forecast) in enumerate(zip(values, ends, forecasts, strict=True)):
            actual = series[end : end + horizon]
            scores = window_scores(actual, np.asarray(forecast), quantiles, series[:end], season)
            rows.append({"series": index, "cutoff": end, **scores, "forecast": forecast})
    return summarise(rows, quantiles), rows


def seasonal_naive_forecaster(
    values: list[np.ndarray], *, horizon: int, season: int, quantiles: list[float]
) -> Forecaster:
    """Seasonal naive with intervals from the in-sample seasonal errors' quantiles (written
    here: it is one line of NumPy, and the default tests then need no statsforecast)."""

    def forecast(ends: list[int]) -> list[np.ndarray]:
        out = []
        for series, end in zip(values, ends, strict=True):
            history = series[:end]
            point = seasonal_naive(history, horizon, season)
            lag = season if len(history) > season else 1
            errors = history[lag:] - history[:-lag]
            spread = np.quantile(errors, quantiles) if len(errors) else np.zeros(len(quantiles))
            spread = spread - spread[quantiles.index(0.5)]
            steps = np.sqrt(np.floor(np.arange(horizon) / lag) + 1)[:, None]  # wider each season
            out.append(point[:, None] + steps * spread[None, :])
        return out

    return forecast

"""Classical forecasters on the same backtests as the network: what it has to beat.

- **seasonal naive**: :func:`deepstrata.forecast.backtest.seasonal_naive_forecaster`;
- **ETS, ARIMA, Theta**: statsforecast's ``AutoETS``, ``AutoARIMA`` and ``AutoTheta``
  (the ``forecast`` extra, imported here only): the field's fast, maintained
  implementations, refitted at every cut-off, their intervals as quantiles;
- **LightGBM on lags**: one gradient-boosted model per quantile over every series' windows
  (the same lookback, scaled the same way, the step ahead as a feature: a direct forecast,
  no recursion), refitted at every cut-off.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from deepstrata.errors import MissingPackageError
from deepstrata.forecast.backtest import Forecaster, backtest, seasonal_naive_forecaster

STATSFORECAST = {"ets": "AutoETS", "arima": "AutoARIMA", "theta": "AutoTheta"}
BASELINES = ("seasonal_naive", *STATSFORECAST, "lightgbm")


def statsforecast_forecaster(
    name: str,
    values: list[np.ndarray],
    *,
    horizon: int,
    season: int,
    quantiles: list[float],
    frequency: str,
) -> Forecaster:
    """statsforecast's ``Auto<name>`` refitted on each series' history at every cut-off."""
    try:
        import statsforecast
        from statsforecast import models as sf_models
    except ImportError:
        raise MissingPackageError(
            "ETS, ARIMA and Theta baselines need statsforecast", extra="forecast"
        ) from None

    def level(q: float):  # 0.1 and 0.9 -> the 80 % interval; statsforecast names it "80"
        value = round(abs(1 - 2 * q) * 100, 6)
        return int(value) if value == int(value) else value

    levels = sorted({level(q) for q in quantiles if q != 0.5})

    def forecast(ends: list[int]) -> list[np.ndarray]:
        frame = pd.concat(
            [
                pd.DataFrame({"unique_id": i, "ds": np.arange(end), "y": series[:end]})
                for i, (series, end) in enumerate(zip(values, ends, strict=True))
            ]
        )
        model = getattr(sf_models, STATSFORECAST[name])(season_length=season)
        engine = statsforecast.StatsForecast(models=[model], freq=1, n_jobs=1)
        result = engine.forecast(df=frame, h=horizon, level=levels).set_index("unique_id")
        column = STATSFORECAST[name]
        out = []
        for i in range(len(values)):
            rows = result.loc[[i]]
            block = []
            for q in quantiles:
                if q == 0.5:
                    block.append(rows[column].to_numpy())
                else:
                    side = "lo" if q < 0.5 else "hi"
                    block.append(rows[f"{column}-{side}-{level(q)}"].to_numpy())
            out.append(np.stack(block, axis=1))
        return out

    return forecast


def lightgbm_forecaster(
    values: list[np.ndarray], *, horizon: int, lookback: int, quantiles: list[float], seed: int = 0
) -> Forecaster:
    """LightGBM on the lookback's lags (scaled by the window) and the step ahead."""
    try:
        import lightgbm
    except ImportError:
        raise MissingPackageError(
            "the LightGBM baseline needs lightgbm", extra="forecast"
        ) from None

    def rows_of(history: np.ndarray):
        window = history[-lookback:]
        location, scale = window.mean(), window.std() + 1e-3 * abs(window.mean()) + 1e-8
        return (window - location) / scale, location, scale

    def forecast(ends: list[int]) -> list[np.ndarray]:
        features, targets = [], []
        for series, end in zip(values, ends, strict=True):
            for origin in range(lookback, end - horizon + 1):
                lags, location, scale = rows_of(series[:origin])
                future = (series[origin : origin + horizon] - location) / scale
                features.append(np.column_stack([np.tile(lags, (horizon, 1)), np.arange(horizon)]))
                targets.append(future)
        x, y = np.concatenate(features), np.concatenate(targets)
        models = [
            lightgbm.LGBMRegressor(
                objective="quantile",
                alpha=q,
                n_estimators=200,
                learning_rate=0.05,
                num_leaves=15,
                random_state=seed,
                verbose=-1,
                n_jobs=1,
            ).fit(x, y)
            for q in quantiles
        ]
        out = []
        for series, end in zip(values, ends, strict=True):
            lags, location, scale = rows_of(series[:end])
            grid = np.column_stack([np.tile(lags, (horizon, 1)), np.arange(horizon)])
            block = np.stack([m.predict(grid) for m in models], axis=1) * scale + location
            out.append(np.sort(block, axis=1))
        return out

    return forecast


def compare_baselines(
    values: list[np.ndarray],
    *,
    names: tuple[str, ...] = BASELINES,
    horizon: int,
    count: int,
    quantiles: list[float],
    season: int,
    lookback: int,
    frequency: str,
) -> dict[str, dict]:
    """Each baseline's backtest summary, with the seconds it took."""
    results = {}
    for name in names:
        if name == "seasonal_naive":
            forecaster = seasonal_naive_forecaster(
                values, horizon=horizon, season=season, quantiles=quantiles
            )
        elif name == "lightgbm":
            forecaster = lightgbm_forecaster(
                values, horizon=horizon, lookback=lookback, quantiles=quantiles
            )
        else:
            forecaster = statsforecast_forecaster(
                name,
                values,
                horizon=horizon,
                season=season,
                quantiles=quantiles,
                frequency=frequency,
            )
        started = time.perf_counter()
        summary, _ = backtest(
            values, forecaster, horizon=horizon, count=count, quantiles=quantiles, season=season
        )
        results[name] = {**summary, "seconds": round(time.perf_counter() - started, 3)}
    return results

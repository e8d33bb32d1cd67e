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
from deepstrata.options.forecast import BASELINES

STATSFORECAST = {"ets": "AutoETS", "arima": "AutoARIMA", "theta": "AutoTheta"}


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


def _lightgbm():
    try:
        import lightgbm
    except ImportError:
        raise MissingPackageError(
            "the LightGBM baseline needs lightgbm", extra="forecast"
        ) from None
    return lightgbm


def check_available(names) -> None:
    """A MissingPackageError naming the extra when a baseline in ``names`` cannot be
    imported: asked before any training, so a fit that would fail at the end fails first."""
    if set(names) & set(STATSFORECAST):
        try:
            import statsforecast  # noqa: F401
        except ImportError:
            wanted = ", ".join(sorted(set(names) & set(STATSFORECAST)))
            raise MissingPackageError(
                f"the {wanted} baseline(s) need statsforecast", extra="forecast"
            ) from None
    if "lightgbm" in names:
        _lightgbm()


def _lag_rows(history: np.ndarray, lookback: int):
    window = history[-lookback:]
    location, scale = window.mean(), window.std() + 1e-3 * abs(window.mean()) + 1e-8
    return (window - location) / scale, location, scale


def fit_lightgbm(
    values: list[np.ndarray],
    ends: list[int],
    *,
    horizon: int,
    lookback: int,
    quantiles: list[float],
    seed: int = 0,
) -> list:
    """One LightGBM booster per quantile on every window of the histories before ``ends``;
    each rebuilt from its text model, so that a saved and reloaded one predicts the same."""
    lightgbm = _lightgbm()
    features, targets = [], []
    for series, end in zip(values, ends, strict=True):
        for origin in range(lookback, end - horizon + 1):
            lags, location, scale = _lag_rows(series[:origin], lookback)
            future = (series[origin : origin + horizon] - location) / scale
            features.append(np.column_stack([np.tile(lags, (horizon, 1)), np.arange(horizon)]))
            targets.append(future)
    x, y = np.concatenate(features), np.concatenate(targets)
    boosters = []
    for q in quantiles:
        model = lightgbm.LGBMRegressor(
            objective="quantile",
            alpha=q,
            n_estimators=200,
            learning_rate=0.05,
            num_leaves=15,
            random_state=seed,
            verbose=-1,
            n_jobs=1,
        ).fit(x, y)
        boosters.append(lightgbm.Booster(model_str=model.booster_.model_to_string()))
    return boosters


def lightgbm_predict(
    boosters: list, values: list[np.ndarray], ends: list[int], *, horizon: int, lookback: int
) -> list[np.ndarray]:
    """Per series, ``(H, Q)`` forecasts of ``boosters`` from the history before ``ends[i]``."""
    out = []
    for series, end in zip(values, ends, strict=True):
        lags, location, scale = _lag_rows(series[:end], lookback)
        grid = np.column_stack([np.tile(lags, (horizon, 1)), np.arange(horizon)])
        block = np.stack([b.predict(grid) for b in boosters], axis=1) * scale + location
        out.append(np.sort(block, axis=1))
    return out


def lightgbm_forecaster(
    values: list[np.ndarray], *, horizon: int, lookback: int, quantiles: list[float], seed: int = 0
) -> Forecaster:
    """LightGBM on the lookback's lags (scaled by the window) and the step ahead."""
    _lightgbm()
    settings = {"horizon": horizon, "lookback": lookback}

    def forecast(ends: list[int]) -> list[np.ndarray]:
        boosters = fit_lightgbm(values, ends, quantiles=quantiles, seed=seed, **settings)
        return lightgbm_predict(boosters, values, ends, **settings)

    return forecast


def make_forecaster(
    name: str,
    values: list[np.ndarray],
    *,
    horizon: int,
    quantiles: list[float],
    season: int,
    lookback: int,
    frequency: str,
    seed: int = 0,
) -> Forecaster:
    """The baseline ``name`` (one of :data:`BASELINES`) on ``values``."""
    if name == "seasonal_naive":
        return seasonal_naive_forecaster(
            values, horizon=horizon, season=season, quantiles=quantiles
        )
    if name == "lightgbm":
        return lightgbm_forecaster(
            values, horizon=horizon, lookback=lookback, quantiles=quantiles, seed=seed
        )
    return statsforecast_forecaster(
        name, values, horizon=horizon, season=season, quantiles=quantiles, frequency=frequency
    )


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
        forecaster = make_forecaster(
            name,
            values,
            horizon=horizon,
            quantiles=quantiles,
            season=season,
            lookback=lookback,
            frequency=frequency,
        )
        started = time.perf_counter()
        summary, _ = backtest(
            values, forecaster, horizon=horizon, count=count, quantiles=quantiles, season=season
        )
        results[name] = {**summary, "seconds": round(time.perf_counter() - started, 3)}
    return results

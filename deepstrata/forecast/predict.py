"""``predict`` with a forecaster: per series and step, the median forecast and quantiles.

The data is each series' history (the target filled in) and, when the forecaster was fit
with known-ahead covariates, the next ``horizon`` rows of each series with those columns
given and the target left empty. A missing future covariate is a DataError naming the
column and series, before anything is forecast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepstrata.data.sources import read_table
from deepstrata.errors import ConfigError
from deepstrata.forecast import windows as win


def quantile_column(target: str, level: float) -> str:
    """``units_q10`` for the 0.1 quantile of ``units``."""
    return f"{target}_q{round(level * 100, 6):g}"


def check_future(table, spec: win.Spec) -> None:
    """Every series has ``horizon`` rows after its last target with each known-ahead
    covariate filled in (a DataError naming the first row or series that has not)."""
    if not spec.known:
        return
    frame = table.frame
    times = win.parse_times(table, spec.time)
    keys = win._keys(frame, spec.series)
    target = win.target_values(table, spec.target)
    for key in keys.unique():
        rows = np.flatnonzero((keys == key).to_numpy())
        observed = rows[~np.isnan(target[rows])]
        last = times.iloc[observed].max() if len(observed) else times.iloc[rows].min()
        future = rows[(times.iloc[rows] > last).to_numpy()]
        named = f" of series {', '.join(key)}" if key else ""
        for column in spec.known:
            missing = future[frame[column].iloc[future].isna().to_numpy()]
            if len(missing):
                raise table.error(
                    f"the known-ahead covariate is missing from a future row{named}",
                    column=column,
                    position=int(missing[0]),
                )
        if len(future) < spec.horizon:
            raise table.error(
                f"{len(future)} future rows{named} give the known-ahead covariates "
                f"({', '.join(spec.known)}); the forecast needs {spec.horizon}",
                column=spec.known[0],
                hint="add the next rows with the covariates filled and the target empty",
            )


def forecast_frame(model, data) -> pd.DataFrame:
    """One row per series and step: series columns, time, step, median, quantiles."""
    spec = model.spec
    table = read_table(data)
    for name in [spec.time, spec.target, *spec.series, *spec.known, *spec.past]:
        if name not in table.frame.columns:
            raise ConfigError(
                f"no column {name!r} in {table.source}; the forecaster was fit with it",
                option="DATA",
            )
    check_future(table, spec)
    panel = win.read_panel(table, spec, fill_future=True)
    forecasts = model.forecast(panel)
    offset = pd.tseries.frequencies.to_offset(spec.frequency)
    median = model.quantiles.index(0.5)
    records = []
    for series, forecast in zip(panel.series, forecasts, strict=True):
        last = series.times[len(series.values) - 1]
        for step in range(spec.horizon):
            record = dict(zip(spec.series, series.key, strict=True))
            record[spec.time] = last + (step + 1) * offset
            record["step"] = step + 1
            record[spec.target] = forecast[step, median]
            for level, value in zip(model.quantiles, forecast[step], strict=True):
                if level != 0.5:
                    record[quantile_column(spec.target, level)] = value
            records.append(record)
    return pd.DataFrame.from_records(records)

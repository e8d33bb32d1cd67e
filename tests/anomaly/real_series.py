"""Real series from statsmodels with injected anomalies (the slow test and the report's
table read them): spikes of 4-6 robust sds at 1 % of the steps and one level shift of 5."""

from __future__ import annotations

import numpy as np
import pandas as pd


def co2():
    import statsmodels.api as sm

    data = sm.datasets.co2.load_pandas().data.resample("MS").mean().interpolate()
    data = data.reset_index()  # 526 months, 1958-2001 (5 months without a reading filled)
    return pd.DataFrame({"date": data["index"], "value": data["co2"]})


def co2_weekly():
    import statsmodels.api as sm

    data = sm.datasets.co2.load_pandas().data.interpolate().reset_index()
    return pd.DataFrame({"date": data["index"], "value": data["co2"]})  # 2284 weeks


def sunspots():
    import statsmodels.api as sm

    data = sm.datasets.sunspots.load_pandas().data
    dates = pd.to_datetime(data.YEAR.astype(int).astype(str))
    return pd.DataFrame({"date": dates, "value": data.SUNACTIVITY})


def inject(frame: pd.DataFrame, seed: int, share: float = 0.01) -> pd.DataFrame:
    """``frame`` with ``odd`` = 1 at the injected steps: spikes of 4 to 6 robust sds (1.4826
    x the MAD of the one-step changes, over sqrt 2) up or down at ``share`` of the steps,
    and a level shift of 5 from a random step on (its first step labelled). Never in the
    first or last eighth, so every anomaly has history before it."""
    rng = np.random.default_rng(seed)
    values = frame["value"].to_numpy(float).copy()
    changes = np.diff(values)
    sd = 1.4826 * np.median(np.abs(changes - np.median(changes))) / np.sqrt(2)
    n = len(values)
    spots = rng.choice(np.arange(n // 8, n - n // 8), max(1, round(share * n)) + 1, replace=False)
    shift, spikes = spots[0], spots[1:]
    values[shift:] += 5 * sd * rng.choice([-1, 1])
    values[spikes] += rng.uniform(4, 6, len(spikes)) * sd * rng.choice([-1, 1], len(spikes))
    odd = np.zeros(n, int)
    odd[spots] = 1
    return frame.assign(value=values, odd=odd)

"""A tiny pair of monthly series (a yearly sine with noise, a few spikes labelled ``odd``)
and the series detector fitted on it once per session (test_series and test_series_run
share it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

SPIKES = {"a": [40, 75, 101], "b": [30, 88]}


def tiny_series(steps: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for name, level in (("a", 10.0), ("b", 50.0)):
        t = np.arange(steps)
        y = level + 2 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.2, steps)
        odd = np.zeros(steps, int)
        for step in [s for s in SPIKES[name] if s < steps]:
            y[step] += 3.0 if step % 2 else -3.0
            odd[step] = 1
        # monthly: windows.calendar's weekday features call pandas' deprecated dayofweek
        days = pd.date_range("2010-01-01", periods=steps, freq="MS").strftime("%Y-%m-%d")
        frames.append(pd.DataFrame({"day": days, "sensor": name, "reading": y, "odd": odd}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def series_found():
    from deepstrata.anomaly.series_run import check_series_request, find_series_anomalies
    from deepstrata.forecast.residuals import Settings
    from tests.conftest import torch_threads

    frame = tiny_series()
    request = check_series_request(
        frame, time="day", series=["sensor"], label="odd", settings=Settings(hidden_dim=16)
    )
    with torch_threads(1):
        found = find_series_anomalies(request, max_epochs=10)
    return frame, request, found

"""A tiny panel (two monthly series with a known-ahead promotion, a static store type and
a gap) and one forecaster fit on it, shared by the forecast tests: a few seconds in all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def tiny_panel(months: int = 72, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for store, kind, level in (("a", "big", 100.0), ("b", "small", 20.0)):
        steps = np.arange(months)
        promo = (rng.random(months) < 0.2).astype(int)
        y = (
            level * (1 + 0.2 * np.sin(2 * np.pi * steps / 12))
            + 5 * promo
            + rng.normal(0, 1, months)
        )
        frames.append(
            pd.DataFrame(
                {
                    "date": pd.date_range("2015-01-01", periods=months, freq="MS"),
                    "store": store,
                    "kind": kind,
                    "promo": promo,
                    "units": y.round(3),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame.drop(index=10).reset_index(drop=True)  # a missing month in store a


TINY = {"max_epochs": 3, "hidden_dims": [16], "batch_size": 64, "seed": 0}


@pytest.fixture(scope="session")
def panel_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("forecast") / "sales.csv"
    tiny_panel().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def forecaster(panel_csv):
    from deepstrata.config import FitConfig
    from deepstrata.forecast.fit import fit_forecaster

    cfg = FitConfig(target="units", time="date", series="store", horizon=6, backtests=2, **TINY)
    return fit_forecaster(panel_csv, cfg, progress=False)

"""A tiny panel (two monthly series with a known-ahead promotion, a static store type and
a gap); the forecaster fit on it once per session is tests/conftest.py's ``forecaster``
fixture (the forecast, serve and browser tests share it)."""

from __future__ import annotations

import numpy as np
import pandas as pd


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

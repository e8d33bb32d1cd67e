import json

import numpy as np
import pytest

from deepstrata.config import FitConfig
from deepstrata.errors import DataError
from deepstrata.forecast.fit import fit_forecaster, is_forecaster, load_forecaster
from tests.forecast.conftest import TINY, tiny_panel


def test_fit_sorts_covariates_and_reports_the_gap(forecaster):
    spec = forecaster.spec
    assert (spec.frequency, spec.season, spec.known, list(spec.static)) == (
        "MS",
        12,
        ["promo"],
        ["kind"],
    )
    assert forecaster.metrics["data"]["inserted_timestamps"] == 1
    backtest = forecaster.metrics["backtest"]
    assert backtest["network"]["windows"] == 4  # 2 series x 2 cut-offs
    assert set(backtest["network"]) >= {"mase", "rmsse", "smape", "wql", "coverage"}


def test_bundle_round_trip(forecaster, panel_csv, tmp_path):
    path = forecaster.save(tmp_path / "bundle")
    assert is_forecaster(path) and not is_forecaster(tmp_path)
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "manifest.json",
        "metrics.json",
        "report.html",
        "weights.safetensors",
    ]
    config = json.loads((path / "config.json").read_text())
    assert config["kind"] == "forecast" and config["quantiles"] == [0.1, 0.5, 0.9]
    frame = tiny_panel()
    future = future_rows(frame)
    history = frame.copy()
    loaded = load_forecaster(path)
    first = loaded.predictions(panel_csv_with(history, future, tmp_path))
    assert len(first) == 12 and list(first.columns[:4]) == ["store", "date", "step", "units"]
    assert (first["units_q10"] <= first["units"]).all() and (
        first["units"] <= first["units_q90"]
    ).all()
    again = forecaster.predictions(panel_csv_with(history, future, tmp_path))
    np.testing.assert_allclose(first["units"], again["units"], rtol=1e-5)


def future_rows(frame, steps: int = 6):
    import pandas as pd

    rows = []
    for store, group in frame.groupby("store"):
        dates = pd.date_range(group["date"].max(), periods=steps + 1, freq="MS")[1:]
        rows.append(
            pd.DataFrame({"date": dates, "store": store, "kind": group["kind"].iloc[0], "promo": 1})
        )
    return pd.concat(rows, ignore_index=True)


def panel_csv_with(history, future, tmp_path):
    import pandas as pd

    path = tmp_path / "history.csv"
    pd.concat([history, future]).to_csv(path, index=False)
    return path


def test_the_horizon_must_fit_the_history(panel_csv):
    cfg = FitConfig(target="units", time="date", series="store", horizon=20, backtests=2, **TINY)
    with pytest.raises(DataError, match="--horizon 20 with --backtests 2 needs at least"):
        fit_forecaster(panel_csv, cfg, progress=False)

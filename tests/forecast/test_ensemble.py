"""fit --time --ensemble: the best baseline chosen and mixed, stored without pickle, and a
reloaded ensemble forecasting as the one in memory (the tiny two-store panel)."""

import json
import sys

import numpy as np
import pytest

from deepstrata.cli import main
from deepstrata.config import FitConfig
from deepstrata.errors import ConfigError, MissingPackageError
from deepstrata.forecast.ensemble import WEIGHTS, Mix, choose_weight, mix, weigh
from deepstrata.forecast.fit import fit_forecaster, load_forecaster
from tests.forecast.conftest import TINY, tiny_panel
from tests.forecast.test_fit import future_rows, panel_csv_with


@pytest.fixture(scope="module")
def ensemble(panel_csv):
    cfg = FitConfig(
        target="units",
        time="date",
        series="store",
        horizon=6,
        backtests=2,
        ensemble=True,
        baselines="seasonal_naive,lightgbm",
        **TINY,
    )
    return fit_forecaster(panel_csv, cfg, progress=False)


def test_the_best_baseline_is_chosen_and_weighed(ensemble):
    facts = ensemble.metrics["ensemble"]
    candidates = facts["candidates"]
    assert set(candidates) == {"seasonal_naive", "lightgbm"}
    assert facts["baseline"] == min(candidates, key=candidates.get)
    assert facts["weight_network"] in WEIGHTS.tolist() and len(facts["held_out_weights"]) == 2
    backtest = ensemble.metrics["backtest"]
    assert {"network", facts["baseline"], "ensemble"} <= set(backtest)
    assert backtest["ensemble"]["windows"] == backtest["network"]["windows"] == 4
    assert ensemble.mix.baseline == facts["baseline"]


def test_a_saved_ensemble_forecasts_as_the_one_in_memory(ensemble, tmp_path):
    path = ensemble.save(tmp_path / "bundle")
    config = json.loads((path / "config.json").read_text())
    stored = config["ensemble"]
    assert stored["baseline"] == ensemble.mix.baseline
    assert stored["weight_network"] == ensemble.mix.weight
    if stored["baseline"] == "lightgbm":  # its boosters as LightGBM text, three quantiles
        assert len(stored["lightgbm_files"]) == 3
        assert all(
            (path / name).read_text().startswith("tree") for name in stored["lightgbm_files"]
        )
    assert not list(path.glob("*.pkl"))
    assert "ensemble" in (path / "report.html").read_text()
    frame = tiny_panel()
    data = panel_csv_with(frame, future_rows(frame), tmp_path)
    loaded = load_forecaster(path)
    again, first = loaded.predictions(data), ensemble.predictions(data)
    np.testing.assert_array_equal(again.to_numpy(), first.to_numpy())
    assert (first["units_q10"] <= first["units"]).all() and (
        first["units"] <= first["units_q90"]
    ).all()


def test_a_bundle_naming_a_file_outside_is_refused(tmp_path):
    # (a bundle's manifest is verified first; this is what its config.json may not say)
    with pytest.raises(ValueError, match="ensemble_lightgbm_N"):
        Mix.from_config(
            {"baseline": "lightgbm", "weight_network": 0.5, "seed": 0, "lightgbm_files": ["../x"]},
            tmp_path,
        )


def test_serve_answers_the_mix(ensemble):
    pytest.importorskip("httpx")
    import pandas as pd
    from fastapi.testclient import TestClient

    from deepstrata.serve.forecast import create_forecast_app
    from deepstrata.serve.settings import ServeSettings
    from tests.serve.test_forecast import records

    frame = tiny_panel()
    history = pd.concat([frame, future_rows(frame)], ignore_index=True)
    client = TestClient(create_forecast_app(ensemble, ServeSettings(token="s" * 16)))
    assert client.get("/readyz").json()["ensemble"]["baseline"] == ensemble.mix.baseline
    headers = {"Authorization": "Bearer " + "s" * 16}
    answer = client.post("/forecast", json={"records": records(history)}, headers=headers)
    served = pd.DataFrame(answer.json()["forecasts"])
    expected = ensemble.predictions(history)
    np.testing.assert_allclose(served["units_q90"], expected["units_q90"], rtol=1e-6)


def test_the_mix_is_per_quantile_level_with_the_baseline_refitted(ensemble, tmp_path):
    forecaster = ensemble
    from deepstrata.forecast import windows as win
    from deepstrata.forecast.backtest import seasonal_naive_forecaster

    frame = tiny_panel()
    data = panel_csv_with(frame, future_rows(frame), tmp_path)
    from deepstrata.data.sources import read_table

    panel = win.read_panel(read_table(data), forecaster.spec, fill_future=True)
    values = [s.values for s in panel.series]
    deep = forecaster.forecast_panel(panel)
    spec, quantiles = forecaster.spec, forecaster.quantiles
    naive = seasonal_naive_forecaster(
        values, horizon=spec.horizon, season=spec.season, quantiles=quantiles
    )([len(v) for v in values])
    mixed = Mix("seasonal_naive", 0.25).apply(deep, values, spec, quantiles)
    for d, n, m in zip(deep, naive, mixed, strict=True):
        np.testing.assert_allclose(m, 0.25 * d + 0.75 * n)


def test_choose_weight_takes_the_most_even_of_the_indistinguishable():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, 40)
    flat = np.stack([1 + 0.001 * noise for _ in WEIGHTS])  # no weight better than another
    assert WEIGHTS[choose_weight(flat)] == 0.5
    steep = np.stack([np.full(40, 1.0 + w) + 0.001 * noise for w in WEIGHTS])  # baseline wins
    assert WEIGHTS[choose_weight(steep)] == 0.0


def test_weigh_scores_each_cutoff_with_the_earlier_cutoffs_weight():
    horizon, quantiles = 4, [0.1, 0.5, 0.9]
    series = np.arange(40, dtype=float)
    deep, base = [], []
    for cutoff in (32, 36):  # the baseline exact, the network 5 off: the baseline wins
        truth = series[cutoff : cutoff + horizon, None] + np.array([-1.0, 0.0, 1.0])
        deep.append({"series": 0, "cutoff": cutoff, "forecast": truth + 5})
        base.append({"series": 0, "cutoff": cutoff, "forecast": truth})
    weight, facts, rows = weigh(deep, base, [series], quantiles=quantiles, season=1, count=2)
    # the first cut-off has no earlier windows: the even mix; the second learns from it
    assert weight == 0.0 and facts["held_out_weights"] == [0.5, 0.0]
    assert rows[0]["mase"] > 0 and rows[1]["mase"] == 0.0
    np.testing.assert_allclose(
        mix(deep[0]["forecast"], base[0]["forecast"], 0.5), base[0]["forecast"] + 2.5
    )


def test_an_ensemble_with_a_missing_extra_fails_first(panel_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "statsforecast", None)  # import statsforecast fails
    cfg = FitConfig(
        target="units", time="date", series="store", horizon=6, ensemble=True, baselines="ets"
    )
    with pytest.raises(MissingPackageError, match=r"ets baseline.*deepstrata\[forecast\]"):
        fit_forecaster(tmp_path / "no such file.csv", cfg, progress=False)  # before reading
    out = tmp_path / "runs" / "sales"
    args = ["fit", str(panel_csv), "--target", "units", "--time", "date", "--series", "store"]
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                *args,
                "--horizon",
                "6",
                "--ensemble",
                "--baselines",
                "ets,seasonal_naive",
                "-o",
                str(out),
            ]
        )
    assert exit_.value.code == 1 and "statsforecast" in capsys.readouterr().err
    assert not out.exists()


def test_baselines_go_with_ensemble():
    with pytest.raises(ConfigError, match="--baselines"):
        FitConfig(target="units", time="date", horizon=6, baselines="ets")
    with pytest.raises(ConfigError, match="--baselines"):
        FitConfig(target="units", time="date", horizon=6, ensemble=True, baselines="prophet")

"""What ``deepstrata fit --time`` and ``compare --time`` do once their flags are read: the
commands stay thin (deepstrata/cli/), the work and its printing live here."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

BACKTEST_COLUMNS = ("mase", "rmsse", "smape", "wql", "coverage")


def fit_and_save(data, run: dict, *, quiet: bool) -> Path:
    """Fit a forecaster on ``data`` with ``run``'s config and write its bundle."""
    from deepstrata.forecast.fit import fit_forecaster

    model = fit_forecaster(data or Path(run["data_path"]), run["config"], progress=not quiet)
    path = model.save(run["destination"], overwrite=run["overwrite"])
    if not run["keep"] and Path(run["run_path"]).is_dir():
        shutil.rmtree(run["run_path"])  # a forecaster keeps no checkpoints there
    backtest = model.metrics["backtest"]
    print(f"backtest over {backtest['cutoffs']} cut-offs (horizon {model.spec.horizon}):")
    print("forecaster        " + "  ".join(f"{c:>8}" for c in BACKTEST_COLUMNS))
    for name, figures in backtest.items():
        if isinstance(figures, dict) and "mase" in figures:
            print(f"{name:<18}" + "  ".join(f"{figures[c]:>8.4f}" for c in BACKTEST_COLUMNS))
    if model.mix is not None:
        print(f"ensemble: {model.metrics['ensemble']['reason']}")
    print(f"bundle written to {path}", file=sys.stdout)
    return path


def compare_forecasters(data, options: dict, *, quiet: bool) -> dict:
    """``compare --time``: the network and every baseline on the same rolling-origin
    backtests; prints one line each and returns the figures."""
    from deepstrata.config import FitConfig
    from deepstrata.forecast.baselines import BASELINES, compare_baselines
    from deepstrata.forecast.fit import fit_forecaster

    cfg = FitConfig.from_dict(options, source="flags")
    started = time.perf_counter()
    model = fit_forecaster(data, cfg, progress=not quiet, final=False)
    results = {
        "network": {
            **model.metrics["backtest"]["network"],
            "seconds": round(time.perf_counter() - started, 3),
        }
    }
    values = model.metrics["values"]
    spec = model.spec
    results |= compare_baselines(
        values,
        names=BASELINES,
        horizon=spec.horizon,
        count=cfg.backtests,
        quantiles=model.quantiles,
        season=spec.season,
        lookback=spec.lookback,
        frequency=spec.frequency,
    )
    print(f"backtest over {cfg.backtests} cut-offs (horizon {spec.horizon}), {len(values)} series:")
    print("forecaster        " + "  ".join(f"{c:>8}" for c in (*BACKTEST_COLUMNS, "seconds")))
    for name, figures in results.items():
        print(
            f"{name:<18}" + "  ".join(f"{figures[c]:>8.4f}" for c in (*BACKTEST_COLUMNS, "seconds"))
        )
    return results

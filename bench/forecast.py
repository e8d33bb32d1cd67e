"""Forecasting: deepstrata's forecaster, alone and as ``--ensemble`` (mixed with the best of
seasonal naive, ETS, Theta and LightGBM on lags), against statsforecast's AutoETS and
AutoARIMA (and seasonal naive) on the same real series and rolling-origin backtests (MASE,
coverage, seconds); then the forecaster's training throughput against a plain PyTorch loop on the
same network and windows (windows per second, median of 5 alternated pairs).

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/forecast.py [--epochs 60] [--backtests 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepstrata.config import FitConfig
from deepstrata.forecast import windows as win
from deepstrata.forecast.baselines import compare_baselines
from deepstrata.forecast.fit import fit_forecaster
from deepstrata.tasks.forecast import pinball
from deepstrata.train.trainer import Trainer
from tests.forecast.test_real import co2, sunspots


def accuracy(epochs: int, backtests: int) -> None:
    print(f"{'data':<10}{'forecaster':<22}{'MASE':>8}{'coverage':>10}{'seconds':>9}")
    for load in (co2, sunspots):
        frame, target, horizon = load()
        cfg = FitConfig(
            target=target, time="date", horizon=horizon, backtests=backtests, max_epochs=epochs
        )
        started = time.perf_counter()
        model = fit_forecaster(frame, cfg, progress=False, final=False)
        results = {
            "network": {
                **model.metrics["backtest"]["network"],
                "seconds": time.perf_counter() - started,
            }
        }
        started = time.perf_counter()
        mixed = fit_forecaster(
            frame,
            dataclasses.replace(cfg, ensemble=True, baselines="seasonal_naive,ets,theta,lightgbm"),
            progress=False,
            final=False,
        )
        partner = mixed.metrics["ensemble"]["baseline"]
        results[f"ensemble+{partner}"] = {
            **mixed.metrics["backtest"]["ensemble"],
            "seconds": time.perf_counter() - started,  # the network, every baseline, the mix
        }
        spec = model.spec
        results |= compare_baselines(
            model.metrics["values"],
            names=("seasonal_naive", "ets", "arima"),
            horizon=horizon,
            count=backtests,
            quantiles=model.quantiles,
            season=spec.season,
            lookback=spec.lookback,
            frequency=spec.frequency,
        )
        for name, figures in results.items():
            print(
                f"{load.__name__:<10}{name:<22}{figures['mase']:>8.3f}{figures['coverage']:>10.3f}{figures['seconds']:>9.2f}"
            )
        ensemble = f"ensemble+{partner}"
        for mine in ("network", ensemble):
            for name in ("ets", "arima"):
                ratio = results[mine]["mase"] / results[name]["mase"]
                print(f"{load.__name__:<10}MASE {mine}/{name}: {ratio:.2f}")


def throughput(epochs: int = 5) -> None:
    frame, target, horizon = co2()
    cfg = FitConfig(target=target, time="date", horizon=horizon, max_epochs=1)
    from deepstrata.data.sources import read_table
    from deepstrata.forecast.fit import make_spec
    from deepstrata.forecast.network import build_network

    table = read_table(frame)
    spec = make_spec(table, cfg)
    spec.lookback = 24
    panel = win.read_panel(table, spec)
    train, train_y, _, _ = win.training_windows(panel, spec)
    inputs, y = win.stack(train, train_y)
    levels = torch.tensor([0.1, 0.5, 0.9])
    arch = {
        "lookback": 24,
        "horizon": horizon,
        "covariate_dim": int(inputs["covariates"].shape[2]),
        "num_quantiles": 3,
        "dropout": 0.1,
    }

    def ours() -> float:
        torch.manual_seed(0)
        net = build_network(arch)
        trainer = Trainer(
            net,
            loss_fn=lambda o, t: pinball(o, t, levels),
            learning_rate=1e-3,
            schedule="constant",
            batch_size=64,
            max_epochs=epochs,
            patience=epochs,
        )
        started = time.perf_counter()
        trainer.fit(inputs, y)
        return len(y) * epochs / (time.perf_counter() - started)

    def plain() -> float:
        torch.manual_seed(0)
        net = build_network(arch)
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
        started = time.perf_counter()
        for _ in range(epochs):
            net.train()
            for index in torch.randperm(len(y)).split(64):
                batch = {k: v[index] for k, v in inputs.items()}
                loss = pinball(net(batch), y[index], levels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return len(y) * epochs / (time.perf_counter() - started)

    # Alternated, so that a busy machine slows both alike; the median of 5 pairs' ratios.
    pairs = [(ours(), plain()) for _ in range(5)]
    a, b = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    ratio = statistics.median(p[0] / p[1] for p in pairs)
    print(
        f"training throughput on {len(y)} co2 windows: deepstrata Trainer {a:.0f} windows/s, "
        f"plain PyTorch {b:.0f} windows/s, ratio {ratio:.2f} (median of 5 alternated pairs)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--backtests", type=int, default=3)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.skip_throughput:
        throughput()
    if not args.skip_accuracy:
        accuracy(args.epochs, args.backtests)

"""``fit --time --ensemble``: the network mixed with the best classical forecaster.

On the same rolling-origin backtests as the network, every baseline asked for
(``--baselines``, all of :data:`~deepstrata.options.forecast.BASELINES` by default) is
scored; the one with the lowest **weighted quantile loss** is the partner (WQL rather than
MASE: the mix is of every quantile, not only the median). The mix is, per quantile level,

    q_mix(tau) = w * q_network(tau) + (1 - w) * q_baseline(tau)

(quantile averaging, "Vincentization": a convex mix of two non-crossing quantile vectors
never crosses), with one weight ``w`` for every step and series, on the grid 0, 0.05, ..., 1,
chosen on the backtest windows by their mean pinball loss, each window's divided by its
in-sample seasonal naive error (MASE's scale, so that a large series does not outvote a
small one): of the weights within one standard error of the lowest loss, the one nearest
an even mix. This is the table ensemble's rule (:mod:`deepstrata.recipes.ensemble`): a
weight fitted to a handful of windows chases noise, and equal weights hold up better on
new data (the "forecast combination puzzle"). One weight, not one per step: a backtest of
a few cut-offs gives a per-step weight a few windows to be fitted on.

The ``ensemble`` row of the backtest is honest about that choice: the windows of each
cut-off are mixed with the weight chosen on the *earlier* cut-offs' windows only (whose
actuals are all known by then; the first cut-off, with none, gets the even mix the rule
falls back to), so no weight has seen the future it is scored on. The weight stored is the
one chosen on all of them.

What predict needs is stored without pickle: the baseline's name and its settings (the
statistical ones, seasonal naive, ETS, ARIMA and Theta, are refitted on each posted
history: they fit per series in seconds), LightGBM's boosters (fitted on the whole history
at fit time) in LightGBM's own text format, and the weight, in config.json.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from deepstrata.evaluate.selection import within_one_standard_error
from deepstrata.forecast.backtest import naive_scale, summarise, window_scores
from deepstrata.forecast.baselines import (
    check_available,
    fit_lightgbm,
    lightgbm_predict,
    make_forecaster,
)
from deepstrata.options.forecast import BASELINES, parse_columns

WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 2)  # the network's share
EVEN = 0.5  # the weight before any window tells (what choose_weight picks among ties)


def requested_baselines(cfg) -> list[str]:
    """The baselines ``cfg`` mixes from (none without ``--ensemble``); their packages
    checked here, before any work (a MissingPackageError names the extra)."""
    if not cfg.ensemble:
        return []
    names = parse_columns(cfg.baselines) if cfg.baselines is not None else list(BASELINES)
    check_available(names)
    return names


def mix(network: np.ndarray, baseline: np.ndarray, weight: float) -> np.ndarray:
    """``(H, Q)``: each quantile level's forecasts mixed, the network at ``weight``."""
    return weight * np.asarray(network) + (1.0 - weight) * np.asarray(baseline)


def window_losses(
    deep: list[dict], base: list[dict], values: list[np.ndarray], quantiles, season: int
) -> np.ndarray:
    """``(weights, windows)``: each mix's mean pinball loss over a window's steps and
    quantiles, over the window's in-sample seasonal naive mean absolute error."""
    levels = np.asarray(quantiles)
    losses = np.empty((len(WEIGHTS), len(deep)))
    for j, (d, b) in enumerate(zip(deep, base, strict=True)):
        series, cutoff = values[d["series"]], d["cutoff"]
        horizon = len(d["forecast"])
        actual = series[cutoff : cutoff + horizon][:, None]
        scale = naive_scale(series[:cutoff], season, 1)
        for i, weight in enumerate(WEIGHTS):
            below = actual - mix(d["forecast"], b["forecast"], weight)  # (H, Q)
            losses[i, j] = np.maximum(levels * below, (levels - 1) * below).mean() / scale
    return losses


def choose_weight(losses: np.ndarray) -> int:
    """The index into :data:`WEIGHTS`: of those within one standard error (over windows)
    of the lowest mean loss, the nearest an even mix."""
    close = np.flatnonzero(within_one_standard_error(losses))
    return int(close[np.argmin(np.abs(WEIGHTS[close] - 0.5))])


def weigh(
    deep: list[dict],
    base: list[dict],
    values: list[np.ndarray],
    *,
    quantiles: list[float],
    season: int,
    count: int,
) -> tuple[float, dict, list[dict]]:
    """(the weight, its facts: curve and each cut-off's weight from the earlier cut-offs,
    the ensemble's backtest rows). ``deep`` and ``base`` are the same windows' backtest rows
    (:func:`deepstrata.forecast.backtest.backtest`, cut-off by cut-off)."""
    losses = window_losses(deep, base, values, quantiles, season)
    weight = float(WEIGHTS[choose_weight(losses)])
    per_cutoff = len(deep) // count
    rank = np.arange(len(deep)) // per_cutoff  # which cut-off each window is at
    held_out, rows = [], []
    for k in range(count):
        earlier = rank < k
        w = float(WEIGHTS[choose_weight(losses[:, earlier])]) if earlier.any() else EVEN
        held_out.append(w)
        for j in np.flatnonzero(rank == k):
            d, b = deep[j], base[j]
            series, cutoff = values[d["series"]], d["cutoff"]
            forecast = mix(d["forecast"], b["forecast"], w)
            actual = series[cutoff : cutoff + len(forecast)]
            scores = window_scores(actual, forecast, quantiles, series[:cutoff], season)
            rows.append({"series": d["series"], "cutoff": cutoff, **scores, "forecast": forecast})
    curve = {"weights": WEIGHTS.tolist(), "scaled_pinball": losses.mean(axis=1).tolist()}
    facts = {"weight_network": weight, "held_out_weights": held_out, "curve": curve}
    return weight, facts, rows


class Mix:
    """The fitted partner of a forecaster's network: the baseline's name, the network's
    weight, and for LightGBM its boosters (one per quantile)."""

    def __init__(self, baseline: str, weight: float, *, seed: int = 0, boosters=None):
        self.baseline, self.weight, self.seed = baseline, float(weight), int(seed)
        self.boosters = boosters

    def baseline_forecasts(self, values: list[np.ndarray], spec, quantiles) -> list[np.ndarray]:
        """Per series, the baseline's ``(H, Q)`` forecast after its whole history: refitted
        on it (statistical baselines) or from the stored boosters (LightGBM)."""
        ends = [len(v) for v in values]
        if self.baseline == "lightgbm":
            return lightgbm_predict(
                self.boosters, values, ends, horizon=spec.horizon, lookback=spec.lookback
            )
        forecaster = make_forecaster(
            self.baseline,
            values,
            horizon=spec.horizon,
            quantiles=list(quantiles),
            season=spec.season,
            lookback=spec.lookback,
            frequency=spec.frequency,
            seed=self.seed,
        )
        return forecaster(ends)

    def apply(self, deep: list[np.ndarray], values, spec, quantiles) -> list[np.ndarray]:
        """The network's forecasts ``deep`` mixed with the baseline's on the same histories."""
        if self.weight >= 1.0:
            return deep
        base = self.baseline_forecasts(values, spec, quantiles)
        return [mix(d, b, self.weight) for d, b in zip(deep, base, strict=True)]

    @classmethod
    def fit(cls, baseline: str, weight: float, values, spec, quantiles, *, seed: int = 0) -> Mix:
        """The mix for predict: LightGBM's boosters fitted on every series' whole history."""
        boosters = None
        if baseline == "lightgbm":
            boosters = fit_lightgbm(
                values,
                [len(v) for v in values],
                horizon=spec.horizon,
                lookback=spec.lookback,
                quantiles=list(quantiles),
                seed=seed,
            )
        return cls(baseline, weight, seed=seed, boosters=boosters)

    # -- the bundle ------------------------------------------------------------------------
    def to_config(self) -> tuple[dict, dict[str, bytes]]:
        """(config.json's ``ensemble`` entry, the files it names)."""
        files = {}
        for index, booster in enumerate(self.boosters or []):
            files[f"ensemble_lightgbm_{index}.txt"] = booster.model_to_string().encode("utf-8")
        config = {
            "baseline": self.baseline,
            "weight_network": self.weight,
            "seed": self.seed,
            "lightgbm_files": sorted(files),
        }
        return config, files

    @classmethod
    def from_config(cls, config: dict, directory: Path) -> Mix:
        """Back from config.json's entry (the bundle's manifest already verified)."""
        boosters = None
        if config["baseline"] not in BASELINES:
            raise ValueError(f"unknown baseline {config['baseline']!r}")
        names = config["lightgbm_files"]
        if any(not re.fullmatch(r"ensemble_lightgbm_\d+\.txt", str(name)) for name in names):
            raise ValueError(f"ensemble files must be ensemble_lightgbm_N.txt, got {names}")
        if (config["baseline"] == "lightgbm") != bool(names):
            raise ValueError("a LightGBM partner needs its models, and only it has them")
        if names:
            from deepstrata.forecast.baselines import _lightgbm

            lightgbm = _lightgbm()
            try:
                boosters = [
                    lightgbm.Booster(model_str=(directory / name).read_text("utf-8"))
                    for name in config["lightgbm_files"]
                ]
            except lightgbm.basic.LightGBMError as error:  # a bundle's file is data: one line
                raise ValueError(f"a LightGBM model does not load: {error}") from None
        return cls(
            config["baseline"], config["weight_network"], seed=config["seed"], boosters=boosters
        )


def ensemble_backtest(
    values: list[np.ndarray],
    deep_rows: list[dict],
    names: list[str],
    *,
    spec,
    quantiles,
    count,
    seed,
    say,
) -> tuple[dict, dict, list[dict]]:
    """The baselines on the network's backtest, the best one, and the mix: (the backtest
    entries to add — the best baseline's and the ensemble's summaries —, the ensemble's
    facts for metrics.json, the ensemble's rows)."""
    from deepstrata.forecast.backtest import backtest

    kwargs = {
        "horizon": spec.horizon,
        "count": count,
        "quantiles": quantiles,
        "season": spec.season,
    }
    scored = {}
    for name in names:
        say(f"ensemble: backtesting {name}")
        forecaster = make_forecaster(
            name,
            values,
            horizon=spec.horizon,
            quantiles=quantiles,
            season=spec.season,
            lookback=spec.lookback,
            frequency=spec.frequency,
            seed=seed,
        )
        scored[name] = backtest(values, forecaster, **kwargs)
    best = min(scored, key=lambda name: scored[name][0]["wql"])
    weight, facts, rows = weigh(
        deep_rows, scored[best][1], values, quantiles=quantiles, season=spec.season, count=count
    )
    summary = summarise(rows, quantiles)
    facts = {
        "baseline": best,
        "chosen_by": "backtest weighted quantile loss",
        "candidates": {name: scored[name][0]["wql"] for name in names},
        **facts,
        "reason": (
            f"{best.replace('_', ' ')} has the lowest backtest WQL of "
            f"{', '.join(names)}; mixed with the network at {weight:g} (one weight, by "
            "scaled pinball loss on the backtest windows, the most even within one standard "
            "error of the lowest)"
        ),
    }
    return {best: scored[best][0], "ensemble": summary}, facts, rows

"""``fit --time``: a global forecaster across series, backtested, in a bundle.

read -> :class:`~deepstrata.forecast.windows.Spec` (frequency, covariates, lookback) ->
panel -> a network trained on every series before the first backtest cut-off, its
intervals conformalized (:mod:`deepstrata.forecast.conformal`), scored at each cut-off
beside seasonal naive (:mod:`deepstrata.forecast.backtest`) and, with ``--ensemble``,
mixed with the best baseline (:mod:`deepstrata.forecast.ensemble`) -> the network trained
again on all the history -> :class:`Forecaster`, whose ``save`` writes the bundle
(config.json, weights.safetensors, metrics.json, report.html, an ensemble's LightGBM text
models) through the one writer.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepstrata.bundle.format import versions
from deepstrata.bundle.read import read_bundle
from deepstrata.bundle.write import write_bundle
from deepstrata.data.sources import read_table
from deepstrata.errors import BundleError, ConfigError
from deepstrata.forecast import conformal
from deepstrata.forecast import windows as win
from deepstrata.forecast.backtest import backtest, seasonal_naive_forecaster
from deepstrata.forecast.network import build_network
from deepstrata.options.forecast import parse_columns
from deepstrata.seeding import seed_everything
from deepstrata.tasks.forecast import pinball
from deepstrata.train.precision import resolve_device
from deepstrata.train.progress import Progress
from deepstrata.train.trainer import Trainer

BUNDLE_KIND = "forecast"
DEFAULT_LEARNING_RATE = 1e-3  # --learning-rate auto: TiDE's rate; the range test over-shoots
# on pinball losses of a few hundred windows (it suggested 1e-2 and diverged on co2)


def make_spec(table, cfg) -> win.Spec:
    """The spec of a fit: columns sorted into covariates, frequency, lookback (not yet)."""
    if cfg.target is None:
        raise ConfigError("a forecaster needs the column to forecast: --target", option="--target")
    series = parse_columns(cfg.series)
    times = win.parse_times(table, cfg.time)
    known, past, static = win.describe_covariates(
        table,
        target=cfg.target,
        time=cfg.time,
        series=series,
        past=parse_columns(cfg.past_covariates),
        ignore=list(cfg.ignore),
    )
    keys = win._keys(table.frame, series)
    win.check_unique(table, times, keys, cfg.time)
    frequency = cfg.frequency or win.infer_frequency(times, keys, table.source)
    spec = win.Spec(
        target=cfg.target,
        time=cfg.time,
        series=series,
        frequency=frequency,
        horizon=int(cfg.horizon),
        lookback=0,
        known=known,
        past=past,
        static=static,
    )
    win.fit_covariate_scales(table, spec)
    return spec


class Forecaster:
    """A fitted forecaster: its spec, quantiles, network, metrics, and ``widen``: how far
    (in window-scaled units) the outer quantiles move out so that the out-of-sample
    windows' interval coverage is nominal (:mod:`deepstrata.forecast.conformal`); ``mix``:
    the baseline an ensemble mixes in (:class:`deepstrata.forecast.ensemble.Mix`)."""

    def __init__(
        self, spec, architecture, network, quantiles, metrics, training, widen=0.0, mix=None
    ):
        self.spec, self.architecture, self.network = spec, architecture, network
        self.quantiles, self.metrics, self.training = list(quantiles), metrics, training
        self.widen = float(widen)
        self.mix = mix  # a deepstrata.forecast.ensemble.Mix with --ensemble, else None

    # -- forecasting -----------------------------------------------------------------------
    def forecast_panel(
        self, panel: win.Panel, ends: list[int] | None = None, widen: float | None = None
    ) -> list[np.ndarray]:
        """Per series, ``(H, Q)`` quantile forecasts from its values before ``ends[i]``
        (the outer quantiles moved out by ``widen``, the forecaster's own by default)."""
        ends = ends or [len(s.values) for s in panel.series]
        windows = [
            win.window_inputs(s, end, self.spec) for s, end in zip(panel.series, ends, strict=True)
        ]
        self.network.eval()
        with torch.no_grad():
            scaled = self.network(win.stack(windows)).double().numpy()  # (S, H, Q)
        scaled = scaled + (self.widen if widen is None else widen) * spread(self.quantiles)
        out = []
        for window, forecast in zip(windows, scaled, strict=True):
            values = forecast * window["scale"] + window["location"]
            out.append(np.sort(values, axis=1))  # quantiles never cross
        return out

    def forecast(self, panel: win.Panel) -> list[np.ndarray]:
        """Per series, ``(H, Q)`` forecasts after its whole history: the network's, mixed
        with the baseline's when the forecaster is an ensemble."""
        deep = self.forecast_panel(panel)
        if self.mix is None:
            return deep
        values = [s.values for s in panel.series]
        return self.mix.apply(deep, values, self.spec, self.quantiles)

    def predictions(self, data) -> pd.DataFrame:
        """Per series and step: the time, the median forecast and every quantile."""
        from deepstrata.forecast.predict import forecast_frame

        return forecast_frame(self, data)

    # -- the bundle ------------------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        from deepstrata.report.forecast import forecast_report

        config = {
            "kind": BUNDLE_KIND,
            "spec": self.spec.to_dict(),
            "architecture": self.architecture,
            "quantiles": self.quantiles,
            "interval_widen": self.widen,
            "training": self.training,
        }
        files = {}
        if self.mix is not None:
            config["ensemble"], files = self.mix.to_config()
        weights = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        report = forecast_report(self.metrics, self.spec.target)
        return write_bundle(
            path,
            config=config,
            weights=weights,
            metrics=self.metrics,
            versions=versions(),
            files={"report.html": report.encode("utf-8"), **files},
            overwrite=overwrite,
        )


def is_forecaster(path: str | Path) -> bool:
    """Whether the bundle at ``path`` holds a forecaster (config.json says so)."""
    from deepstrata.bundle.read import bundle_kind

    return bundle_kind(path) == BUNDLE_KIND


def load_forecaster(path: str | Path) -> Forecaster:
    """A forecaster back from its bundle (the manifest verified first)."""
    config, weights, metrics = read_bundle(path)
    try:
        spec = win.Spec.from_dict(config["spec"])
        network = build_network(config["architecture"])
        network.load_state_dict(weights)
        mix = None
        if config.get("ensemble") is not None:
            from deepstrata.forecast.ensemble import Mix

            mix = Mix.from_config(config["ensemble"], Path(path))
        return Forecaster(
            spec,
            config["architecture"],
            network,
            config["quantiles"],
            metrics,
            config["training"],
            widen=config.get("interval_widen", 0.0),
            mix=mix,
        )
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as error:
        raise BundleError(
            f"config.json does not describe a forecaster: {error}", path=str(path)
        ) from None


# -- fitting -------------------------------------------------------------------------------


def train_network(panel, spec, cfg, quantiles, *, ends=None, progress=None):
    """A network trained on each series' values before ``ends`` (all of them by default)."""
    train, train_y, valid, valid_y = win.training_windows(panel, spec, end=ends, seed=cfg.seed)
    inputs, target = win.stack(train, train_y)
    validation = win.stack(valid, valid_y) if valid else None
    dropout = cfg.dropout[0] if isinstance(cfg.dropout, list) else cfg.dropout
    architecture = {
        "lookback": spec.lookback,
        "horizon": spec.horizon,
        "covariate_dim": int(inputs["covariates"].shape[2]),
        "past_dim": int(inputs["past"].shape[2]),
        "static_dim": int(inputs["static"].shape[1]),
        "num_quantiles": len(quantiles),
        "hidden_dim": int(cfg.hidden_dims[0]),
        "num_layers": len(cfg.hidden_dims),
        "dropout": float(dropout),
    }
    seed_everything(cfg.seed)
    network = build_network(architecture)
    levels = torch.tensor(quantiles)
    rate = DEFAULT_LEARNING_RATE if cfg.learning_rate == "auto" else float(cfg.learning_rate)
    trainer = Trainer(
        network,
        loss_fn=lambda output, target: pinball(output, target, levels.to(output.device)),
        learning_rate=rate,
        weight_decay=cfg.weight_decay,
        schedule=cfg.schedule,
        batch_size=cfg.batch_size,
        max_epochs=cfg.max_epochs,
        patience=cfg.patience,
        min_delta=cfg.min_delta,
        gradient_clip=cfg.gradient_clip,
        device=resolve_device(cfg.device),
        time_limit=cfg.time_limit,
        seed=cfg.seed,
        progress=progress,
    )
    history = trainer.fit(inputs, target, validation)
    network.cpu().eval()
    calibration = conformal.scores(network, *validation) if validation else np.zeros((0,))
    widen = conformal.widening(calibration, quantiles[-1] - quantiles[0])
    facts = {"windows": len(train), "epochs": len(history.epochs), "interval_widen": widen}
    return network, architecture, facts, calibration


def spread(quantiles: list[float]) -> np.ndarray:
    """``(Q,)``: -1 for the lowest quantile, +1 for the highest, 0 for the median, the rest
    in proportion to their distance from it."""
    levels = np.asarray(quantiles) - 0.5
    return levels / max(np.abs(levels).max(), 1e-12)


def fit_forecaster(data, cfg, *, progress: bool = True, final: bool = True) -> Forecaster:
    """Backtest, then fit on everything (see the module doc); ``final=False`` stops after
    the backtest (compare), keeping the series' values in the metrics. With ``--ensemble``
    the best baseline is mixed in (:mod:`deepstrata.forecast.ensemble`)."""
    from deepstrata.forecast.ensemble import Mix, requested_baselines

    started = time.perf_counter()
    baselines = requested_baselines(cfg)  # their packages checked before any work
    table = read_table(data)
    spec = make_spec(table, cfg)
    panel = win.read_panel(table, spec)
    spec.lookback = win.choose_lookback(spec, panel.report["longest"], cfg.backtests, table.source)
    quantiles = list(cfg.quantiles)
    values = [s.values for s in panel.series]
    bar = Progress(enabled=progress) if progress else None
    say = bar.note if bar else (lambda line: None)
    say(
        f"{len(values)} series at frequency {spec.frequency}, lookback {spec.lookback}, "
        f"{panel.report['inserted_timestamps']} missing timestamps filled; backtest network"
    )
    done = run_backtest(panel, spec, cfg, quantiles, baselines, bar=bar, say=say)
    ensemble = done["ensemble"]
    if not final:
        metrics = {"backtest": done["scores"], "values": values, "ensemble": ensemble}
        return Forecaster(
            spec, {}, done["network"], quantiles, metrics, cfg.to_dict(), done["widen"]
        )
    network, architecture, final_fit, own = train_network(panel, spec, cfg, quantiles, progress=bar)
    # calibrated on its own validation windows and every out-of-sample backtest window
    calibration = np.concatenate([own.ravel(), done["calibration"].ravel()])
    final_fit["interval_widen"] = conformal.widening(calibration, quantiles[-1] - quantiles[0])
    mix = None
    if ensemble is not None:
        weight = ensemble["weight_network"]
        mix = Mix.fit(ensemble["baseline"], weight, values, spec, quantiles, seed=cfg.seed)
    metrics = {
        "task": "forecast",
        "backtest": {**done["scores"], "cutoffs": cfg.backtests},
        "data": panel.report,
        "spec": {"frequency": spec.frequency, "season": spec.season, "lookback": spec.lookback},
        "training": {"backtest": done["fit"], "final": final_fit},
        "seconds": round(time.perf_counter() - started, 2),
        "examples": _examples(panel, done["rows"], spec),
    }
    if ensemble is not None:
        metrics["ensemble"] = ensemble
    widen = final_fit["interval_widen"]
    return Forecaster(
        spec, architecture, network, quantiles, metrics, cfg.to_dict(), widen, mix=mix
    )


def run_backtest(panel, spec, cfg, quantiles, baselines, *, bar, say) -> dict:
    """The backtest network trained before the first cut-off, conformalized cut-off by
    cut-off (:mod:`deepstrata.forecast.conformal`), scored beside seasonal naive (and,
    with ``baselines``, mixed with the best of them). Returns its ``network``, ``fit``
    facts, ``widen`` (at the last cut-off), ``calibration`` scores, the ``scores`` per
    forecaster, the ``rows`` the report draws (the ensemble's when there is one) and the
    ``ensemble`` facts (None without)."""
    from deepstrata.forecast.ensemble import ensemble_backtest

    values = [s.values for s in panel.series]
    first = [len(v) - cfg.backtests * spec.horizon for v in values]
    network, _, fit, _ = train_network(panel, spec, cfg, quantiles, ends=first, progress=bar)
    widenings, calibration = conformal.sequential_widenings(
        network, panel, spec, first, cfg.backtests, quantiles[-1] - quantiles[0]
    )
    fit["interval_widen"] = widenings
    model = Forecaster(spec, {}, network, quantiles, {}, {}, widen=widenings[-1])
    kwargs = {"horizon": spec.horizon, "count": cfg.backtests, "quantiles": quantiles}
    kwargs["season"] = spec.season
    cut = iter(widenings)  # backtest asks cut-off by cut-off, earliest first
    deep, rows = backtest(
        values, lambda ends: model.forecast_panel(panel, ends, next(cut)), **kwargs
    )
    naive_forecaster = seasonal_naive_forecaster(
        values, horizon=spec.horizon, season=spec.season, quantiles=quantiles
    )
    naive, _ = backtest(values, naive_forecaster, **kwargs)
    say(f"backtest MASE {deep['mase']:.3f} (seasonal naive {naive['mase']:.3f})")
    scores, ensemble = {"network": deep, "seasonal_naive": naive}, None
    if baselines:
        entries, ensemble, rows = ensemble_backtest(
            values,
            rows,
            baselines,
            spec=spec,
            quantiles=quantiles,
            count=cfg.backtests,
            seed=cfg.seed,
            say=say,
        )
        scores |= entries
        say(f"ensemble: {ensemble['reason']}; backtest MASE {entries['ensemble']['mase']:.3f}")
    return {
        "network": network,
        "fit": fit,
        "widen": widenings[-1],
        "calibration": calibration,
        "scores": scores,
        "rows": rows,
        "ensemble": ensemble,
    }


def _examples(panel, rows, spec, count: int = 3) -> list[dict]:
    """The last backtest window of a few series, with their history: what the report draws."""
    last = {}
    for row in rows:
        last[row["series"]] = row
    examples = []
    for index in list(last)[:count]:
        row, series = last[index], panel.series[index]
        start = max(0, row["cutoff"] - 3 * spec.horizon - spec.lookback)
        examples.append(
            {
                "series": ", ".join(series.key) or spec.target,
                "history": series.values[start : row["cutoff"] + spec.horizon].tolist(),
                "cutoff": row["cutoff"] - start,
                "forecast": np.asarray(row["forecast"]).tolist(),
            }
        )
    return examples

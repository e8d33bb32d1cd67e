"""``fit --time``: a global forecaster across series, backtested, in a bundle.

read -> :class:`~deepstrata.forecast.windows.Spec` (frequency, covariates, lookback) ->
panel -> a network trained on every series before the first backtest cut-off, scored at
each cut-off beside seasonal naive (:mod:`deepstrata.forecast.backtest`) -> the network
trained again on all the history -> :class:`Forecaster`, whose ``save`` writes the bundle
(config.json, weights.safetensors, metrics.json, report.html) through the one writer.
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
    (in window-scaled units) the outer quantiles move out so that the validation windows'
    interval coverage is nominal (conformalized quantile regression, Romano et al. 2019;
    the pinball-trained quantiles are too narrow on the windows they were trained on)."""

    def __init__(self, spec, architecture, network, quantiles, metrics, training, widen=0.0):
        self.spec, self.architecture, self.network = spec, architecture, network
        self.quantiles, self.metrics, self.training = list(quantiles), metrics, training
        self.widen = float(widen)

    # -- forecasting -----------------------------------------------------------------------
    def forecast_panel(self, panel: win.Panel, ends: list[int] | None = None) -> list[np.ndarray]:
        """Per series, ``(H, Q)`` quantile forecasts from its values before ``ends[i]``."""
        ends = ends or [len(s.values) for s in panel.series]
        windows = [
            win.window_inputs(s, end, self.spec) for s, end in zip(panel.series, ends, strict=True)
        ]
        self.network.eval()
        with torch.no_grad():
            scaled = self.network(win.stack(windows)).double().numpy()  # (S, H, Q)
        scaled = scaled + self.widen * spread(self.quantiles)
        out = []
        for window, forecast in zip(windows, scaled, strict=True):
            values = forecast * window["scale"] + window["location"]
            out.append(np.sort(values, axis=1))  # quantiles never cross
        return out

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
        weights = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        report = forecast_report(self.metrics, self.spec.target)
        return write_bundle(
            path,
            config=config,
            weights=weights,
            metrics=self.metrics,
            versions=versions(),
            files={"report.html": report.encode("utf-8")},
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
        return Forecaster(
            spec,
            config["architecture"],
            network,
            config["quantiles"],
            metrics,
            config["training"],
            widen=config.get("interval_widen", 0.0),
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
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
    widen = conformal_widening(network, validation, quantiles) if validation else 0.0
    facts = {"windows": len(train), "epochs": len(history.epochs), "interval_widen": widen}
    return network, architecture, facts


def spread(quantiles: list[float]) -> np.ndarray:
    """``(Q,)``: -1 for the lowest quantile, +1 for the highest, 0 for the median, the rest
    in proportion to their distance from it."""
    levels = np.asarray(quantiles) - 0.5
    return levels / max(np.abs(levels).max(), 1e-12)


def conformal_widening(network, validation, quantiles: list[float]) -> float:
    """The CQR score quantile: on the validation windows, how far each actual falls outside
    the outer quantiles (negative: inside), at the nominal level with the (n + 1) / n
    finite-sample correction. Scaled units, one figure for every step and series."""
    inputs, target = validation
    with torch.no_grad():
        output = network(inputs).double().numpy()  # (V, H, Q)
    actual = target.double().numpy()
    scores = np.maximum(output[..., 0] - actual, actual - output[..., -1]).ravel()
    nominal = quantiles[-1] - quantiles[0]
    level = min(1.0, np.ceil((len(scores) + 1) * nominal) / len(scores))
    return float(np.quantile(scores, level))


def fit_forecaster(data, cfg, *, progress: bool = True, final: bool = True) -> Forecaster:
    """Backtest, then fit on everything (see the module doc); ``final=False`` stops after
    the backtest (compare), keeping the series' values in the metrics."""
    started = time.perf_counter()
    table = read_table(data)
    spec = make_spec(table, cfg)
    panel = win.read_panel(table, spec)
    spec.lookback = win.choose_lookback(spec, panel.report["longest"], cfg.backtests, table.source)
    quantiles = list(cfg.quantiles)
    values = [s.values for s in panel.series]
    first = [len(v) - cfg.backtests * spec.horizon for v in values]
    bar = Progress(enabled=progress) if progress else None
    say = bar.note if bar else (lambda line: None)
    say(
        f"{len(values)} series at frequency {spec.frequency}, lookback {spec.lookback}, "
        f"{panel.report['inserted_timestamps']} missing timestamps filled; backtest network"
    )
    network, _, backtest_fit = train_network(panel, spec, cfg, quantiles, ends=first, progress=bar)
    model = Forecaster(spec, {}, network, quantiles, {}, {}, widen=backtest_fit["interval_widen"])
    kwargs = {
        "horizon": spec.horizon,
        "count": cfg.backtests,
        "quantiles": quantiles,
        "season": spec.season,
    }
    deep, rows = backtest(values, lambda ends: model.forecast_panel(panel, ends), **kwargs)
    naive_forecaster = seasonal_naive_forecaster(
        values, horizon=spec.horizon, season=spec.season, quantiles=quantiles
    )
    naive, _ = backtest(values, naive_forecaster, **kwargs)
    say(f"backtest MASE {deep['mase']:.3f} (seasonal naive {naive['mase']:.3f})")
    if not final:
        metrics = {"backtest": {"network": deep, "seasonal_naive": naive}, "values": values}
        return Forecaster(spec, {}, network, quantiles, metrics, cfg.to_dict(), model.widen)
    network, architecture, final_fit = train_network(panel, spec, cfg, quantiles, progress=bar)
    metrics = {
        "task": "forecast",
        "backtest": {"network": deep, "seasonal_naive": naive, "cutoffs": cfg.backtests},
        "data": panel.report,
        "spec": {"frequency": spec.frequency, "season": spec.season, "lookback": spec.lookback},
        "training": {"backtest": backtest_fit, "final": final_fit},
        "seconds": round(time.perf_counter() - started, 2),
        "examples": _examples(panel, rows, spec),
    }
    return Forecaster(
        spec, architecture, network, quantiles, metrics, cfg.to_dict(), final_fit["interval_widen"]
    )


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

"""One-step-ahead forecasts made out of sample, and their residuals in interval units.

What ``deepstrata anomalies --time`` scores a series by (:mod:`deepstrata.anomaly.series`).
Every series is cut in two at its middle (**two-fold cross-fitting in time**): one TiDE
network (:mod:`deepstrata.forecast.network`) learns one-step-ahead quantile forecasts from
the first halves only, another from the second halves only (each half cut out on its own,
so the second one never reads a first-half value even as an input). Each step of the
second half is then forecast by the first network and each step of the first half by the
second, always from the values *before* the step (the window :func:`window_inputs` reads):
no step is scored by a network that was fitted on it. Two fits instead of a refit per
step: a rolling refit at every origin would cost hundreds of fits, and the cross-fit keeps
the same guarantee.

A residual is put in the units of the forecaster's own predictive interval at that step,
``(actual - median) / ((q_high - q_low) / (z_high - z_low))``, the normal quantiles of the
outer levels making an 80 % interval's width 2.56 standard deviations; a window whose
interval is narrow (a calm stretch) then makes a small error stand out more than a
volatile one does. The per-series calibration on top (median and MAD) is the anomaly
package's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
import torch

from deepstrata.forecast import windows as win
from deepstrata.forecast.network import build_network
from deepstrata.seeding import seed_everything
from deepstrata.tasks.forecast import pinball
from deepstrata.train.trainer import Trainer

QUANTILES = (0.1, 0.5, 0.9)
VALIDATION_SHARE = 0.2  # the last fifth of each half's windows stop the training early
MIN_VALIDATION = 2
# A step's interval is never taken narrower than this share of its series' median width:
# the conformal widening can push the outer quantiles of a calm window onto the median.
WIDTH_FLOOR = 0.1
BATCH = 4096  # windows forecast at once


@dataclass
class Settings:
    """The one-step network's size and training (anomalies' flags set some of them)."""

    hidden_dim: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    learning_rate: float = 3e-3
    batch_rows: tuple = (16, 256)  # a batch is an eighth of the windows, within these
    max_epochs: int = 100
    patience: int = 10
    seed: int = 0


def one_step(spec: win.Spec) -> win.Spec:
    """``spec`` with a horizon of one step."""
    return replace(spec, horizon=1)


def cut(panel: win.Panel, starts: list[int], ends: list[int]) -> win.Panel:
    """Each series' steps ``starts[i]:ends[i]`` as a series of its own (their times,
    values and covariates; the static row kept)."""
    series = [
        win.Series(
            s.key,
            s.times[a:b],
            s.values[a:b],
            s.known[a:b],
            s.past[a:b],
            s.static,
        )
        for s, a, b in zip(panel.series, starts, ends, strict=True)
    ]
    return win.Panel(series, dict(panel.report))


def windows(panel: win.Panel, spec: win.Spec) -> tuple[list, list, list, list]:
    """(train, train targets, validation, validation targets): every one-step window whose
    lookback lies inside its series; the last fifth of each series' origins validate.
    (Windows padded before a series' start are left out: on a few real values their
    forecasts were the worst residuals of a test series, spikes included.)"""
    train, train_y, valid, valid_y = [], [], [], []
    for series in panel.series:
        origins = list(range(spec.lookback, len(series.values)))
        held = max(MIN_VALIDATION, int(len(origins) * VALIDATION_SHARE)) if origins else 0
        held = min(held, len(origins) // 2)
        for number, origin in enumerate(origins):
            into = (train, train_y) if number < len(origins) - held else (valid, valid_y)
            into[0].append(win.window_inputs(series, origin, spec))
            into[1].append(series.values[origin : origin + 1])
    return train, train_y, valid, valid_y


def train_one_step(panel: win.Panel, spec: win.Spec, settings: Settings, *, progress=None):
    """A TiDE network trained with the pinball loss at :data:`QUANTILES` on ``panel``'s
    one-step windows; returns (network, architecture, facts)."""
    spec = one_step(spec)
    train, train_y, valid, valid_y = windows(panel, spec)
    if not train:
        raise ValueError("no training window: every series is shorter than the lookback")
    inputs, target = win.stack(train, train_y)
    validation = win.stack(valid, valid_y) if valid else None
    architecture = {
        "lookback": spec.lookback,
        "horizon": 1,
        "covariate_dim": int(inputs["covariates"].shape[2]),
        "past_dim": int(inputs["past"].shape[2]),
        "static_dim": int(inputs["static"].shape[1]),
        "num_quantiles": len(QUANTILES),
        "hidden_dim": int(settings.hidden_dim),
        "num_layers": int(settings.num_layers),
        "dropout": float(settings.dropout),
    }
    seed_everything(settings.seed)
    network = build_network(architecture)
    levels = torch.tensor(QUANTILES)
    trainer = Trainer(
        network,
        loss_fn=lambda output, target: pinball(output, target, levels),
        learning_rate=settings.learning_rate,
        schedule="plateau",
        batch_size=int(np.clip(len(train) // 8, *settings.batch_rows)),
        max_epochs=settings.max_epochs,
        patience=settings.patience,
        seed=settings.seed,
        progress=progress,
    )
    history = trainer.fit(inputs, target, validation)
    facts = {
        "windows": len(train),
        "validation_windows": len(valid),
        "epochs": len(history.epochs),
        "best_epoch": history.best_epoch,
        "seconds": round(history.seconds, 3),
    }
    return network.cpu().eval(), architecture, facts


def forecasts(network, spec: win.Spec, series: win.Series, origins: np.ndarray) -> np.ndarray:
    """``(N, Q)`` one-step quantile forecasts of ``series`` at ``origins``, each from the
    values before it only (original units, quantiles sorted)."""
    spec = one_step(spec)
    out = []
    network.eval()
    for start in range(0, len(origins), BATCH):
        chosen = [win.window_inputs(series, int(t), spec) for t in origins[start : start + BATCH]]
        with torch.no_grad():
            scaled = network(win.stack(chosen))[:, 0, :].double().numpy()  # (B, Q)
        location = np.array([w["location"] for w in chosen])[:, None]
        scale = np.array([w["scale"] for w in chosen])[:, None]
        out.append(np.sort(scaled * scale + location, axis=1))
    return np.concatenate(out) if out else np.zeros((0, len(QUANTILES)))


def interval_units(actual: np.ndarray, forecast: np.ndarray, floor: float | None = None):
    """(residuals in interval units, the widths' median): ``actual - median`` over the
    outer quantiles' width as a standard deviation (module doc). ``floor`` is the width
    median that :data:`WIDTH_FLOOR` is a share of (the series' own when not given)."""
    normal = NormalDist()
    span = normal.inv_cdf(QUANTILES[-1]) - normal.inv_cdf(QUANTILES[0])
    width = (forecast[:, -1] - forecast[:, 0]) / span
    median = float(np.median(width)) if floor is None and len(width) else float(floor or 0.0)
    width = np.maximum(width, WIDTH_FLOOR * median + 1e-12)
    return (actual - forecast[:, QUANTILES.index(0.5)]) / width, median

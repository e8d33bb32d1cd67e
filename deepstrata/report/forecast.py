"""A forecaster's report: history with the forecast fan for a few series, and the backtest
table. Drawn from the bundle's metrics.json alone (its ``examples`` and ``backtest``);
self-contained like every report (inline CSS, images as data URIs, no script).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from deepstrata.report.html import CSP, CSS, Html, esc, image, note, table
from deepstrata.report.plots import PALETTE, _figure, _png

FIGURES = ("mase", "rmsse", "smape", "wql", "coverage")


def fan_png(example: Mapping, *, target: str) -> bytes:
    """The history, then the backtest window's actuals, median and every quantile band."""
    history = np.asarray(example["history"], dtype=float)
    forecast = np.asarray(example["forecast"], dtype=float)  # (H, Q)
    cutoff = int(example["cutoff"])
    steps = np.arange(cutoff, cutoff + len(forecast))
    with _figure(width=7.0, height=2.6) as figure:
        axis = figure.add_subplot(1, 1, 1)
        axis.plot(np.arange(len(history)), history, color="#374151", linewidth=1, label="actual")
        count = forecast.shape[1]
        for low in range(count // 2):  # outer band palest
            alpha = 0.15 + 0.25 * low / max(count // 2, 1)
            axis.fill_between(
                steps,
                forecast[:, low],
                forecast[:, count - 1 - low],
                color=PALETTE[0],
                alpha=alpha,
                linewidth=0,
            )
        axis.plot(
            steps, forecast[:, count // 2], color=PALETTE[0], linewidth=1.4, label="median forecast"
        )
        axis.axvline(cutoff - 0.5, color=PALETTE[1], linewidth=0.8, linestyle="--", label="cut-off")
        axis.set_title(f"{example['series']}: last backtest window")
        axis.set_ylabel(target)
        axis.legend(loc="upper left")
        return _png(figure)


def backtest_table(backtest: Mapping) -> Html:
    """One line per forecaster: MASE, RMSSE, sMAPE, WQL, coverage (and its nominal)."""
    rows = []
    for name, figures in backtest.items():
        if isinstance(figures, Mapping) and "mase" in figures:
            rows.append(
                [name.replace("_", " "), *(figures.get(f) for f in FIGURES), figures.get("windows")]
            )
    header = ["forecaster", "MASE", "RMSSE", "sMAPE %", "WQL", "coverage", "windows"]
    return table(header, rows, numeric=(1, 2, 3, 4, 5, 6))


def forecast_report(metrics: Mapping, target: str) -> str:
    """The whole page, as text."""
    backtest = metrics.get("backtest", {})
    data = metrics.get("data", {})
    nominal = backtest.get("network", {}).get("nominal_coverage")
    summary = note(
        f"{data.get('series', 0)} series ({data.get('shortest')}–{data.get('longest')} steps"
        f"{', ragged' if data.get('ragged') else ''}); {data.get('inserted_timestamps', 0)} missing "
        f"timestamps filled; {backtest.get('cutoffs')} rolling-origin cut-offs a horizon apart; "
        f"coverage is of the outer quantiles' interval (nominal {nominal})."
    )
    ensemble = metrics.get("ensemble")
    if ensemble:
        summary += note(
            f"Ensemble: {ensemble['reason']}. Its backtest row mixes each cut-off's windows "
            "with the weight chosen on the earlier cut-offs' (the first: an even mix); every quantile level is mixed "
            "alike (network share w, baseline 1 - w). The fans show the ensemble."
        )
    fans = "".join(
        image(fan_png(example, target=target), alt=f"forecast fan of {example['series']}")
        for example in metrics.get("examples", [])
    )
    body = (
        f'<section id="backtest"><h2>Backtest</h2>{summary}{backtest_table(backtest)}</section>'
        f'<section id="fans"><h2>Forecasts</h2>{fans}</section>'
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>deepstrata forecast: {esc(target)}</title>'
        f"{CSP}<style>{CSS}</style></head><body><header><h1>Forecast <code>{esc(target)}</code></h1></header>"
        f"<main>{body}</main></body></html>\n"
    )

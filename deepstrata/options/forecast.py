"""fit's options about time (:mod:`deepstrata.forecast`), and the rule relating them to the
others; :mod:`deepstrata.config` joins them to its own.

>>> [option.flag for option in OPTIONS][:3]
['--time', '--series', '--horizon']
"""

from __future__ import annotations

from deepstrata.errors import ConfigError
from deepstrata.options.spec import AtLeast, Choice, Interval, ListOf, Option

TIME_TASKS = ("forecast",)  # the tasks fit only with --time (deepstrata.tasks.forecast)
# the classical forecasters (deepstrata.forecast.baselines), named once here for the option
BASELINES = ("seasonal_naive", "ets", "arima", "theta", "lightgbm")

OPTIONS = (
    Option(
        "time",
        None,
        "The time column: fit a forecaster (rolling-origin backtests, never a random split).",
        type="str",
        optional=True,
        group="forecast",
        extra={"shown": "off: a table"},
    ),
    Option(
        "series",
        None,
        "Columns naming each series, comma-separated (store,item).",
        type="str",
        optional=True,
        group="forecast",
        extra={"shown": "one series"},
    ),
    Option(
        "horizon",
        None,
        "Steps to forecast (with --time).",
        AtLeast(1),
        type="int",
        optional=True,
        group="forecast",
        extra={"shown": "required with --time"},
    ),
    Option(
        "frequency",
        None,
        "A pandas frequency (D, W, MS, h); inferred when the timestamps are regular.",
        type="str",
        optional=True,
        group="forecast",
        extra={"shown": "inferred"},
    ),
    Option(
        "quantiles",
        [0.1, 0.5, 0.9],
        "Quantiles forecast besides the median, e.g. 0.1,0.5,0.9 (an 80 % interval).",
        ListOf(Interval(0, 1, open="both"), single=True),
        type="float-or-list",
        group="forecast",
    ),
    Option(
        "backtests",
        3,
        "Rolling-origin cut-offs, a horizon apart, the backtest scores the forecaster on.",
        AtLeast(1),
        group="forecast",
    ),
    Option(
        "lookback",
        None,
        "Past steps the network reads (its lags).",
        AtLeast(1),
        type="int",
        optional=True,
        group="forecast",
        extra={"shown": "from the season and horizon"},
    ),
    Option(
        "past_covariates",
        None,
        "Columns known only up to the forecast's start (the rest are known ahead).",
        type="str",
        optional=True,
        group="forecast",
        extra={"shown": "none"},
    ),
    Option(
        "baselines",
        None,
        "With --time --ensemble: the baselines whose best (by backtest weighted quantile "
        "loss) is mixed with the network, comma-separated.",
        Choice(*BASELINES, several=True),
        type="str",
        optional=True,
        group="forecast",
        extra={"shown": "all: " + ",".join(BASELINES)},
    ),
)


def parse_columns(value: str | list[str] | None) -> list[str]:
    """``"store,item"`` or ``["store", "item"]`` -> ``["store", "item"]``; None -> []."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return list(dict.fromkeys(item.strip() for item in items if item and item.strip()))


def rule(config) -> None:
    """--horizon goes with --time (and --time needs it); quantiles sorted, the median in."""
    forecast_flags = ("series", "horizon", "frequency", "lookback", "past_covariates", "baselines")
    if config.time is None:
        if config.task in TIME_TASKS:
            raise ConfigError(
                "a forecast needs the time column: add --time COLUMN", option="--task"
            )
        for name in forecast_flags:
            if getattr(config, name) is not None:
                raise ConfigError(
                    "is for forecasting; add --time COLUMN", option="--" + name.replace("_", "-")
                )
        return
    if config.horizon is None:
        raise ConfigError("a forecaster needs --horizon STEPS", option="--horizon")
    if config.baselines is not None and not config.ensemble:
        raise ConfigError("chooses --ensemble's baselines: add --ensemble", option="--baselines")
    if config.baselines is not None and parse_columns(config.baselines) in ([], ["none"]):
        raise ConfigError("--ensemble needs at least one baseline", option="--baselines")
    if config.folds:
        raise ConfigError(
            "time is validated by rolling-origin backtests (--backtests), never random folds",
            option="--folds",
        )
    values = config.quantiles if isinstance(config.quantiles, list) else [config.quantiles]
    config.quantiles = sorted({*(float(q) for q in values), 0.5})

"""``deepstrata compare``: the command over :func:`deepstrata.compare.run.compare`.

The network's flags are the configuration's options of the same names (made from their
specs, as ``fit``'s are); heavy imports stay inside the function so that ``deepstrata
--help`` stays fast.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.cli.common import ColumnOpt, DataArg, IgnoreOpt
from deepstrata.cli.flags import given, numbers, option_parameters
from deepstrata.config import OPTIONS

# The fit options a learning-curve run may set for its network (one split per fit).
NETWORK_OPTIONS = (
    "task",
    "max_epochs",
    "patience",
    "learning_rate",
    "hidden_dims",
    "batch_size",
    "strategy",
    "device",
    "seed",
    "group",
    "group_pattern",
    "time",  # with --time: the forecaster against seasonal naive, ETS, ARIMA, Theta, LightGBM
    "series",
    "horizon",
    "frequency",
    "backtests",
)


def compare(
    data: DataArg,
    target: Annotated[str | None, typer.Option(help="The column to predict.")] = None,
    fractions: Annotated[
        str, typer.Option(help="Shares of the training rows to train on.")
    ] = "0.1,0.25,0.5,1",
    seeds: Annotated[
        str, typer.Option(help="Seeds: subsets and fits, repeated per seed.")
    ] = "0,1,2",
    families: Annotated[
        str, typer.Option(help="Any of network, logreg, forest, gbm, svm, mlp.")
    ] = "network,logreg,forest,gbm,svm",
    metric: Annotated[
        str | None,
        typer.Option(
            help="accuracy | balanced_accuracy | f1_macro | roc_auc; r2 | rmse | mae. "
            "[accuracy; regression r2]"
        ),
    ] = None,
    test_fraction: Annotated[float, typer.Option(help="Rows held out for the test.")] = 0.2,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory [runs/<data name>.compare]."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing compare output directory.")
    ] = False,
    column: ColumnOpt = None,
    ignore: IgnoreOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per fit.")] = False,
    **network,
) -> None:
    """Learning curves: the network against classical models on 10-100 % of the rows."""
    from deepstrata.cli.display import print_table
    from deepstrata.compare.run import SPREAD, check_destination
    from deepstrata.compare.run import compare as run_compare

    if network.get("time") is not None:  # forecasting: the same rolling-origin backtests
        from deepstrata.forecast.cli import compare_forecasters

        options = given({**network, "target": target, "ignore": ignore or None}, OPTIONS)
        compare_forecasters(data, options, quiet=quiet)
        return
    destination = out or Path("runs") / f"{Path(data).stem}.compare"
    check_destination(destination, overwrite=overwrite)  # before hours of training, not after
    options = given({**network, "column": column or None, "ignore": ignore or None}, OPTIONS)
    result = run_compare(
        data,
        target=target,
        fractions=numbers(fractions, float, "--fractions"),
        seeds=numbers(seeds, int, "--seeds"),
        families=[name.strip() for name in families.split(",") if name.strip()],
        test_fraction=test_fraction,
        metric=metric,
        progress=not quiet,
        **options,
    )
    header, rows = result.table()
    print_table(
        f"test {result.metric} on {result.test_rows} held-out rows (mean ± {SPREAD})",
        header,
        rows,
    )
    for line in result.lines():
        print(line)
    path = result.save(destination, overwrite=overwrite)
    print(f"compare.html and compare.json written to {path}")


_own = [
    p
    for p in inspect.signature(compare, eval_str=True).parameters.values()
    if p.kind is not inspect.Parameter.VAR_KEYWORD
]
compare.__signature__ = inspect.Signature(
    [
        *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.name != "data" else p for p in _own),
        *option_parameters(OPTIONS[name] for name in NETWORK_OPTIONS),
    ]
)

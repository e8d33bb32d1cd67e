"""``deepstrata compare``: the command over :func:`deepstrata.compare.compare`.

Registered in ``deepstrata/cli.py`` with ``app.command()(compare)``; heavy imports stay
inside the function so that ``deepstrata --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def compare(
    data: Annotated[
        Path,
        typer.Argument(help="A CSV, TSV, Parquet or JSONL file, or a folder of class sub-folders."),
    ],
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
    task: Annotated[
        str | None, typer.Option(help="binary | multiclass | regression [inferred].")
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option("--column", help="Force a column's kind: NAME=KIND (repeatable)."),
    ] = None,
    ignore: Annotated[
        list[str] | None, typer.Option(help="Leave a column out (repeatable).")
    ] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Network: [200]")] = None,
    patience: Annotated[int | None, typer.Option(help="Network: [20]")] = None,
    learning_rate: Annotated[
        str | None, typer.Option(help="Network: a rate, or auto (range test). [auto]")
    ] = None,
    hidden_dims: Annotated[
        str | None, typer.Option(help="Network: combiner widths, e.g. 256,128.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Network. [by the rows]")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="Network on image/text: scratch | finetune | features.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | mps. [auto]")] = None,
    seed: Annotated[int | None, typer.Option(help="Draws the test split. [0]")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per fit.")] = False,
) -> None:
    """Learning curves: the network against classical models on 10-100 % of the rows."""
    from deepstrata.compare import SPREAD, check_destination
    from deepstrata.compare import compare as run_compare
    from deepstrata.display import print_table

    destination = out or Path("runs") / f"{Path(data).stem}.compare"
    check_destination(destination, overwrite=overwrite)  # before hours of training, not after
    options = {
        "task": task,
        "column": column or None,
        "ignore": ignore or None,
        "max_epochs": max_epochs,
        "patience": patience,
        "learning_rate": learning_rate,
        "hidden_dims": _numbers(hidden_dims, int, "--hidden-dims"),
        "batch_size": batch_size,
        "strategy": strategy,
        "device": device,
        "seed": seed,
    }
    result = run_compare(
        data,
        target=target,
        fractions=_numbers(fractions, float, "--fractions"),
        seeds=_numbers(seeds, int, "--seeds"),
        families=[name.strip() for name in families.split(",") if name.strip()],
        test_fraction=test_fraction,
        metric=metric,
        progress=not quiet,
        **{name: value for name, value in options.items() if value is not None},
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


def _numbers(text: str | None, kind: type, option: str) -> list | None:
    """``"0.1,0.5"`` -> ``[0.1, 0.5]``; a ConfigError naming ``option`` otherwise."""
    from deepstrata.errors import ConfigError

    if text is None:
        return None
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"expected comma-separated {kind.__name__}s, got {text!r}", option=option
        ) from None

"""The command line: one short typed function per command, over the Python API.

Heavy libraries (torch, pandas, scikit-learn) are imported inside the commands,
so ``deepstrata --help`` answers fast. Every user error exits with status 1 and
a one-line ``error: …`` naming file, column and row where known.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="deepstrata: a table in, a trained, evaluated neural network out.",
)

DataArg = Annotated[Path, typer.Argument(help="A CSV, TSV, Parquet or JSONL file.")]
BundleArg = Annotated[Path, typer.Argument(help="A bundle directory written by `deepstrata fit`.")]
ColumnOpt = Annotated[
    list[str] | None,
    typer.Option("--column", help="Force a column's kind: NAME=KIND (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


@app.command()
def inspect(
    data: DataArg,
    target: Annotated[str | None, typer.Option(help="The column to predict.")] = None,
    column: ColumnOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the schema deepstrata infers: one row per column (kind, role, why)."""
    from deepstrata.config import parse_columns
    from deepstrata.data.schema import format_schema, infer_schema
    from deepstrata.data.sources import read_table
    from deepstrata.display import print_table

    table = read_table(data)
    schema = infer_schema(
        table.frame, target=target, columns=parse_columns(column or []), source=table.source
    )
    if as_json:
        print(json.dumps(schema.to_dict(), indent=2))
        return
    title = f"{data}: {schema.rows} rows" + (f", task {schema.task}" if schema.task else "")
    print_table(
        title,
        ["column", "kind", "role", "missing", "unique", "examples", "why"],
        format_schema(schema),
    )


@app.command()
def fit(
    data: DataArg,
    target: Annotated[str | None, typer.Option(help="The column to predict.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Bundle directory [runs/<data name>].")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML file whose keys are these flags.")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="binary | multiclass | regression [inferred].")
    ] = None,
    column: ColumnOpt = None,
    ignore: Annotated[
        list[str] | None, typer.Option(help="Leave a column out (repeatable).")
    ] = None,
    hidden_dims: Annotated[
        str | None, typer.Option(help="Widths of the combiner's layers, e.g. 256,128.")
    ] = None,
    dropout: Annotated[float | None, typer.Option()] = None,
    learning_rate: Annotated[float | None, typer.Option()] = None,
    weight_decay: Annotated[float | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option(help="[chosen from the row count]")] = None,
    max_epochs: Annotated[int | None, typer.Option()] = None,
    patience: Annotated[
        int | None, typer.Option(help="Epochs without improvement before stopping.")
    ] = None,
    min_delta: Annotated[float | None, typer.Option()] = None,
    validation_fraction: Annotated[float | None, typer.Option()] = None,
    time_limit: Annotated[float | None, typer.Option(help="Seconds of training at most.")] = None,
    min_category_count: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle at --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Train a network on DATA and write a bundle."""
    from deepstrata.config import FitConfig, load_config_file
    from deepstrata.errors import ConfigError

    settings = load_config_file(config) if config else {}
    flags = {
        "target": target,
        "task": task,
        "dropout": dropout,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "batch_size": batch_size,
        "max_epochs": max_epochs,
        "patience": patience,
        "min_delta": min_delta,
        "validation_fraction": validation_fraction,
        "time_limit": time_limit,
        "min_category_count": min_category_count,
        "seed": seed,
    }
    if hidden_dims is not None:
        try:
            flags["hidden_dims"] = [int(h) for h in hidden_dims.split(",")]
        except ValueError:
            raise ConfigError(
                f"expected comma-separated integers, got {hidden_dims!r}", option="--hidden-dims"
            ) from None
    if column:
        flags["column"] = column
    if ignore:
        flags["ignore"] = ignore
    if settings:  # unknown keys fail here, named as the file spells them
        FitConfig.from_dict(settings, source=str(config))
    settings = {str(k).replace("-", "_"): v for k, v in settings.items()}
    settings.update({k: v for k, v in flags.items() if v is not None})
    cfg = FitConfig.from_dict(settings, source=str(config or "flags")).validate()
    destination = out or Path("runs") / Path(data).stem
    if destination.exists() and not overwrite:
        raise ConfigError(
            f"{destination} already exists; pass --overwrite or choose another --out",
            option="--out",
        )

    from deepstrata import api

    model = api.fit(data, config=cfg, progress=not quiet)
    path = model.save(destination, overwrite=overwrite)
    _print_metrics(
        f"validation metrics ({model.metrics['rows']['validation']} rows)",
        model.metrics["validation"],
    )
    print(f"bundle written to {path}")


@app.command()
def predict(
    bundle: BundleArg,
    data: DataArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="CSV to write [stdout].")
    ] = None,
    proba: Annotated[
        bool, typer.Option("--proba", help="Add one probability column per class.")
    ] = False,
    keep: Annotated[
        list[str] | None, typer.Option(help="Copy an input column (e.g. an id) into the output.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output file.")] = False,
) -> None:
    """Predict every row of DATA with a bundle."""
    from deepstrata import api
    from deepstrata.errors import ConfigError

    if output is not None and output.exists() and not overwrite:
        raise ConfigError(f"{output} already exists; pass --overwrite", option="--output")
    frame = api.load(bundle).predictions(data, proba=proba, keep=keep or [])
    if output is None:
        frame.to_csv(sys.stdout, index=False)
        return
    _write_atomically(output, frame.to_csv(index=False))
    print(f"{len(frame)} predictions written to {output}", file=sys.stderr)


def _write_atomically(path: Path, text: str) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@app.command()
def evaluate(bundle: BundleArg, data: DataArg, as_json: JsonOpt = False) -> None:
    """Metrics of a bundle on DATA (which must include the target column)."""
    from deepstrata import api

    metrics = api.load(bundle).evaluate(data)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        _print_metrics(f"{data}", metrics)


def _print_metrics(title: str, metrics: dict) -> None:
    from deepstrata.display import print_table

    print_table(
        title, ["metric", "value"], [[name, f"{value:.4f}"] for name, value in metrics.items()]
    )


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where the demo writes its files.")
    ] = Path("runs/demo"),
    max_epochs: Annotated[int, typer.Option()] = 200,
) -> None:
    """Train on the embedded Palmer penguins data, end to end, in well under two minutes."""
    from deepstrata.demo import run_demo

    run_demo(out, max_epochs=max_epochs)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one clear line and exit 1."""
    from deepstrata.errors import DeepstrataError

    warnings.showwarning = _show_warning
    try:
        app(args=argv, standalone_mode=False)
    except DeepstrataError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except typer.Exit as exit_:
        raise SystemExit(exit_.exit_code) from None
    except typer.Abort:
        print("aborted", file=sys.stderr)
        raise SystemExit(130) from None
    except typer.TyperException as error:  # usage errors (typer's own copy of click)
        error.show()
        raise SystemExit(error.exit_code) from None


if __name__ == "__main__":
    main()

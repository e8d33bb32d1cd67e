"""``deepstrata predict`` and ``deepstrata evaluate``: a bundle over new rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.cli.common import BundleArg, DataArg, JsonOpt, print_metrics, write_atomically


def predict(
    bundle: BundleArg,
    data: DataArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="CSV or Parquet (.parquet: a Parquet input is streamed) to write [stdout].",
        ),
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
    from deepstrata.anomaly import bundle as anomaly
    from deepstrata.bundle.read import bundle_kind
    from deepstrata.forecast import fit as forecast

    kind = bundle_kind(bundle)  # one look at config.json picks the loader
    if kind == forecast.BUNDLE_KIND:  # per series and step: the median and the quantiles
        frame = forecast.load_forecaster(bundle).predictions(data)
    elif kind == anomaly.KIND:  # written by `deepstrata anomalies`: scores per row
        if proba:
            raise ConfigError("an anomaly detector has no class probabilities", option="--proba")
        frame = anomaly.score_rows(bundle, data, keep=keep or [])
    else:
        if output is not None and output.suffix.lower() in (".parquet", ".pq"):
            from deepstrata.data.stream import is_parquet

            if is_parquet(data):
                _predict_streamed(api.load(bundle), data, output, proba=proba, keep=keep or [])
                return
        frame = api.load(bundle).predictions(data, proba=proba, keep=keep or [])
    if output is None:
        frame.to_csv(sys.stdout, index=False)
        return
    if output.suffix.lower() in (".parquet", ".pq"):
        write_atomically(output, lambda path: frame.to_parquet(path, index=False))
    else:
        write_atomically(output, lambda path: frame.to_csv(path, index=False))
    print(f"{len(frame)} predictions written to {output}", file=sys.stderr)


def _predict_streamed(model, data: Path, output: Path, *, proba: bool, keep: list) -> None:
    """A Parquet file or folder of any size: read, predicted and written one row group at a
    time (deepstrata.data.stream), so memory holds one row group, whatever the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepstrata.data.stream import ParquetStream

    stream, rows = ParquetStream(data), 0

    def write(path: Path) -> None:
        nonlocal rows
        writer = None
        for chunk in stream.chunks():
            table = pa.Table.from_pandas(
                model.predictions(chunk, proba=proba, keep=keep),
                preserve_index=False,
                schema=writer.schema if writer else None,  # one schema for every chunk
            )
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            rows += len(chunk)
        if writer is not None:
            writer.close()

    write_atomically(output, write)
    print(f"{rows} predictions written to {output} (streamed)", file=sys.stderr)


def evaluate(bundle: BundleArg, data: DataArg, as_json: JsonOpt = False) -> None:
    """Metrics of a bundle on DATA (which must include the target column)."""
    from deepstrata import api

    metrics = api.load(bundle).evaluate(data)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        print_metrics(f"{data}", metrics)

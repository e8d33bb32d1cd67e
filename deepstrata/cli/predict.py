"""``deepstrata predict`` and ``deepstrata evaluate``: a bundle over new rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.cli.common import BundleArg, DataArg, JsonOpt, print_metrics, write_atomically
from deepstrata.cli.launch import OversubscribeOpt, check, cores

NprocOpt = Annotated[
    int,
    typer.Option(
        help="Predict a Parquet file or folder in N processes on this machine, each taking "
        "a share of the row groups; the output (-o .parquet or .csv) keeps the input's order."
    ),
]


def predict(
    bundle: BundleArg,
    data: DataArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="CSV or Parquet file to write [stdout]; a Parquet input is streamed into a "
            ".parquet or .csv output.",
        ),
    ] = None,
    proba: Annotated[
        bool, typer.Option("--proba", help="Add one probability column per class.")
    ] = False,
    keep: Annotated[
        list[str] | None, typer.Option(help="Copy an input column (e.g. an id) into the output.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output file.")] = False,
    nproc: NprocOpt = 1,
    oversubscribe: OversubscribeOpt = False,
) -> None:
    """Predict every row of DATA with a bundle."""
    from deepstrata import api
    from deepstrata.errors import ConfigError

    if output is not None and output.exists() and not overwrite:
        raise ConfigError(f"{output} already exists; pass --overwrite", option="--output")
    from deepstrata.anomaly import bundle as anomaly
    from deepstrata.bundle.read import bundle_kind
    from deepstrata.data.stream import is_parquet
    from deepstrata.forecast import fit as forecast

    kind = bundle_kind(bundle)  # one look at config.json picks the loader
    check({"nproc": nproc, "max_restarts": 0, "oversubscribe": oversubscribe, "backend": None})
    if nproc > 1:
        _check_parallel(kind, data, output, is_parquet)
    if kind == forecast.BUNDLE_KIND:  # per series and step: the median and the quantiles
        frame = forecast.load_forecaster(bundle).predictions(data)
    elif kind == anomaly.KIND:  # written by `deepstrata anomalies`: scores per row
        if proba:
            raise ConfigError("an anomaly detector has no class probabilities", option="--proba")
        frame = anomaly.score_rows(bundle, data, keep=keep or [])
    else:
        if output is not None and is_parquet(data) and _format(output) is not None:
            _predict_streamed(bundle, data, output, proba=proba, keep=keep or [], nproc=nproc)
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


def _format(output: Path) -> str | None:
    from deepstrata.model.streamed import output_format

    return output_format(output)


def _check_parallel(kind, data: Path, output: Path | None, is_parquet) -> None:
    """What --nproc cannot split, refused before any work (ConfigError naming --nproc)."""
    from deepstrata.errors import ConfigError

    if kind is not None:
        raise ConfigError(
            f"splits the rows of a model's predictions; a {kind} bundle predicts in one process",
            option="--nproc",
        )
    if output is None:
        raise ConfigError(
            "the processes write parts that are joined into a file: stdout cannot be "
            "written in parallel; pass -o preds.parquet (or .csv)",
            option="--nproc",
        )
    if _format(output) is None:
        raise ConfigError(
            f"writes Parquet (.parquet, .pq) or CSV (.csv) in parallel, not {output.name!r}",
            option="--nproc",
        )
    if not is_parquet(data):
        raise ConfigError(
            f"splits a Parquet file or folder by row group; {data} is not Parquet "
            "(convert it, or predict in one process)",
            option="--nproc",
        )


def _predict_streamed(bundle: Path, data: Path, output: Path, *, proba, keep, nproc) -> None:
    """A Parquet file or folder of any size: read, predicted and written one row group at a
    time (deepstrata.model.streamed), in ``nproc`` processes sharing the cores."""
    from deepstrata.model.streamed import predict_stream

    done = (0, 1)  # rows, processes

    def write(path) -> None:
        nonlocal done
        done = predict_stream(
            bundle,
            data,
            path,
            fmt=_format(output),
            nproc=nproc,
            threads=max(1, cores() // nproc),
            proba=proba,
            keep=keep,
        )

    write_atomically(output, write)
    rows, processes = done
    how = f"streamed, {processes} processes" if processes > 1 else "streamed"
    print(f"{rows} predictions written to {output} ({how})", file=sys.stderr)


def evaluate(bundle: BundleArg, data: DataArg, as_json: JsonOpt = False) -> None:
    """Metrics of a bundle on DATA (which must include the target column)."""
    from deepstrata import api

    metrics = api.load(bundle).evaluate(data)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        print_metrics(f"{data}", metrics)

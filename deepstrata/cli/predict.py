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
    from deepstrata.anomaly.bundle import is_anomaly_bundle, score_rows

    if is_anomaly_bundle(bundle):  # written by `deepstrata anomalies`: scores, not predictions
        if proba:
            raise ConfigError("an anomaly detector has no class probabilities", option="--proba")
        frame = score_rows(bundle, data, keep=keep or [])
    else:
        frame = api.load(bundle).predictions(data, proba=proba, keep=keep or [])
    if output is None:
        frame.to_csv(sys.stdout, index=False)
        return
    write_atomically(output, lambda path: frame.to_csv(path, index=False))
    print(f"{len(frame)} predictions written to {output}", file=sys.stderr)


def evaluate(bundle: BundleArg, data: DataArg, as_json: JsonOpt = False) -> None:
    """Metrics of a bundle on DATA (which must include the target column)."""
    from deepstrata import api

    metrics = api.load(bundle).evaluate(data)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        print_metrics(f"{data}", metrics)

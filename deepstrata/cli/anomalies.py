"""``deepstrata anomalies``: score every row of a table without labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.cli.common import ColumnOpt, DataArg, IgnoreOpt, JsonOpt, QuietOpt

TimeOpt = Annotated[
    str | None,
    typer.Option(
        "--time",
        help="A time column: score each step of a series by its out-of-sample one-step "
        "forecast residual instead.",
    ),
]
SeriesOpt = Annotated[
    str | None, typer.Option(help="With --time: columns naming each series, comma-separated.")
]
TargetOpt = Annotated[
    str | None,
    typer.Option(help="With --time: the column scored [default: the one numeric column]."),
]
FrequencyOpt = Annotated[
    str | None,
    typer.Option(help="With --time: a pandas frequency (D, W, MS, h) [default: inferred]."),
]


def anomalies(
    data: DataArg,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the detector as a bundle directory here."),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(help="A 0/1 or two-class column to measure against (not an input)."),
    ] = None,
    contamination: Annotated[
        float | None,
        typer.Option(help="Share of training rows to flag, in (0, 0.5] [default: 0.01]."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(help="Flag rows scoring at least this (not with --contamination)."),
    ] = None,
    ignore: IgnoreOpt = None,
    column: ColumnOpt = None,
    time: TimeOpt = None,
    series: SeriesOpt = None,
    target: TargetOpt = None,
    frequency: FrequencyOpt = None,
    max_epochs: Annotated[
        int | None,
        typer.Option(help="Most epochs of the autoencoder [200] or of each forecaster [100]."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the networks and the forest.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output bundle.")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score each row of DATA: an autoencoder's reconstruction error (with --time: each
    step's out-of-sample one-step forecast residual), an isolation forest beside it; flag
    the most unusual rows; with --label, PR-AUC of both."""
    from deepstrata.config import parse_columns
    from deepstrata.errors import ConfigError

    columns = parse_columns(column or [])
    check_series_flags(time, series=series, target=target, frequency=frequency)
    if time is not None and (ignore or columns):
        raise ConfigError(
            "a series detector reads only the time, series, target and label columns",
            option="--ignore" if ignore else "--column",
        )
    if max_epochs is None:
        max_epochs = 200 if time is None else 100
    if max_epochs < 1:
        raise ConfigError(f"expected at least 1, got {max_epochs}", option="--max-epochs")
    if output is not None and output.exists() and not overwrite:
        raise ConfigError(f"{output} already exists; pass --overwrite", option="--output")
    from deepstrata.anomaly.run import DEFAULT_CONTAMINATION, check_request, find_anomalies
    from deepstrata.anomaly.series_run import check_series_request, find_series_anomalies
    from deepstrata.train.progress import Progress

    if contamination is None and threshold is None:
        contamination = DEFAULT_CONTAMINATION
    progress = Progress(enabled=not quiet)
    asked = {"label": label, "contamination": contamination, "threshold": threshold}
    if time is not None:
        request = check_series_request(
            data,
            time=time,
            series=[name.strip() for name in (series or "").split(",") if name.strip()],
            target=target,
            frequency=frequency,
            **asked,
        )
        found = find_series_anomalies(request, seed=seed, max_epochs=max_epochs, progress=progress)
    else:
        request = check_request(data, ignore=ignore or [], columns=columns, **asked)
        found = find_anomalies(request, seed=seed, max_epochs=max_epochs, progress=progress)
    report(data, found, output, overwrite=overwrite, as_json=as_json)


def check_series_flags(time: str | None, **flags) -> None:
    """A ConfigError naming a series flag given without --time."""
    from deepstrata.errors import ConfigError

    if time is None:
        for name, given in flags.items():
            if given is not None:
                raise ConfigError("only with --time (the scores of a series)", option=f"--{name}")


def report(data, found, output: Path | None, *, overwrite: bool, as_json: bool) -> None:
    """The bundle (when asked) and the summary, as JSON or tables."""
    from deepstrata.anomaly.run import scores_table

    table = scores_table(found)
    if output is not None:
        save(output, found, table, overwrite=overwrite)
    if as_json:
        print(json.dumps(found.metrics, indent=2))
    else:
        show(found.metrics, table, title=f"anomalies in {data}")


def save(output: Path, found, table, *, overwrite: bool) -> None:
    """The detector as a bundle, its training rows' scores in it as scores.csv."""
    from deepstrata.anomaly.bundle import SCORES, save_detector

    files = {SCORES: table.to_csv(index=False).encode("utf-8")}
    save_detector(output, found.detector, metrics=found.metrics, files=files, overwrite=overwrite)
    print(f"anomaly detector written to {output} (scores in {output / SCORES})", file=sys.stderr)


def show(metrics: dict, table, *, title: str) -> None:
    """A short summary: the threshold, the flagged rows, the most unusual rows and, with a
    label, both detectors' PR-AUC."""
    from deepstrata.cli.display import print_table

    rule = metrics["threshold"]
    training = metrics["training"]
    if metrics.get("detector") == "series":
        epochs = "/".join(str(training[fold]["epochs"]) for fold in ("early", "late"))
        described = (
            f"{metrics['rows']} rows in {metrics['series']} series ({metrics['scored_rows']} "
            f"scored); two cross-fitted one-step forecasters, {epochs} epochs"
        )
    else:
        described = (
            f"{metrics['rows']} rows as {metrics['features']} features; autoencoder "
            f"{training['epochs']} epochs (best {training['best_epoch']})"
        )
    print(
        f"{title}: {described}; threshold {rule['value']:.4g} ({rule['rule']}); "
        f"{metrics['flagged']} row(s) flagged"
    )
    top = table.sort_values("score", ascending=False).head(5)
    rows = [
        [
            str(r.row),
            f"{r.score:.4g}",
            "yes" if r.flagged else "no",
            f"{r.isolation_forest_score:.4g}",
        ]
        for r in top.itertuples()
    ]
    print_table("most unusual rows", ["row", "score", "flagged", "isolation forest"], rows)
    if "label" in metrics:
        label = metrics["label"]
        rows = [
            [name, f"{label[key]['pr_auc']:.4f}", f"{label[key]['recall_at_precision_90']:.4f}"]
            for name, key in (
                ("autoencoder", "autoencoder"),
                ("forecast residuals", "forecaster"),
                ("isolation forest", "isolation_forest"),
            )
            if key in label
        ]
        print_table(
            f"against {label['column']!r} ({label['anomalies']} anomalies = "
            f"{label['anomaly_class']!r} in {label['labelled_rows']} rows; PR-AUC by chance "
            f"{label['base_rate']:.4f})",
            ["detector", "PR-AUC", "recall at precision 0.9"],
            rows,
        )

"""``deepstrata drift``: which inputs of new rows moved away from the training rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.cli.common import BundleArg, DataArg, JsonOpt, write_atomically

DRIFT_FOUND = 3  # the exit status of `--check` when something drifted (1: an error, 2: usage)


def drift(
    bundle: BundleArg,
    data: DataArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report as JSON here.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the report as a page (drift.html) here.")
    ] = None,
    as_json: JsonOpt = False,
    alpha: Annotated[float, typer.Option(help="A test's level: flag only below it.")] = 0.01,
    psi_threshold: Annotated[
        float, typer.Option(help="Flag only from this population stability index.")
    ] = 0.1,
    check: Annotated[
        bool, typer.Option("--check", help=f"Exit with status {DRIFT_FOUND} if anything drifted.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the embedding tests' sampling.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output file.")] = False,
) -> None:
    """Per input column of DATA: PSI and a test (KS, chi-square, MMD for text and images)
    against the training rows the bundle kept, and the shift of the model's predictions."""
    from deepstrata.attack.drift import check_drift, check_options
    from deepstrata.errors import ConfigError

    check_options(alpha, psi_threshold)
    for path, flag in ((output, "--output"), (html, "--html")):
        if path is not None and path.exists() and not overwrite:
            raise ConfigError(f"{path} already exists; pass --overwrite", option=flag)
    report = check_drift(bundle, data, alpha=alpha, psi_threshold=psi_threshold, seed=seed)
    payload = report.to_dict()
    text = json.dumps(payload, indent=2, allow_nan=True) + "\n"
    if output is not None:
        write_atomically(output, lambda path: Path(path).write_text(text, encoding="utf-8"))
        print(f"drift report written to {output}", file=sys.stderr)
    if html is not None:
        from deepstrata.attack.drift_page import drift_page

        page = drift_page(payload, title=f"Drift of {data.name} against {bundle.name}")
        write_atomically(html, lambda path: Path(path).write_text(page, encoding="utf-8"))
        print(f"drift page written to {html}", file=sys.stderr)
    if as_json:
        sys.stdout.write(text)
    else:
        show(payload, title=f"drift of {data} against {bundle}")
    if check and report.drift:
        raise SystemExit(DRIFT_FOUND)  # click hands typer.Exit back as a return value


def _number(value) -> str:
    if value is None:
        return "-"
    if value != value:  # NaN: no values to test
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"


def show(payload: dict, *, title: str) -> None:
    """The report as a table: one line per column, then the predictions."""
    from deepstrata.cli.display import print_table

    lines = [*payload["columns"], *([payload["prediction"]] if payload["prediction"] else [])]
    rows = [
        [
            entry["column"],
            entry.get("kind", "output"),
            entry["test"],
            _number(entry["statistic"]),
            _number(entry["p_value"]),
            _number(entry["psi"]),
            "DRIFT" if entry["drifted"] else "ok",
        ]
        for entry in lines
    ]
    header = ["column", "kind", "test", "statistic", "p-value", "PSI", "verdict"]
    print_table(title, header, rows)
    flagged = payload["drifted"] + (
        ["prediction"] if payload["prediction"] and payload["prediction"]["drifted"] else []
    )
    said = ", ".join(flagged) if flagged else "nothing"
    print(
        f"{payload['rows']} rows; drifted: {said} (alpha {payload['alpha']}, "
        f"PSI from {payload['psi_threshold']})"
    )

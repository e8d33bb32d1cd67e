"""``deepstrata audit`` (fairness of a bundle by group), ``deepstrata audit-data`` (label
errors, duplicates, leakage of a table) and ``deepstrata card`` (a bundle's model card).

Each checks all it is given before any work; a refused command writes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.cli.common import BundleArg, DataArg, JsonOpt

SensitiveOpt = Annotated[
    str, typer.Option("--sensitive", help="Columns to audit by, comma-separated: sex,race.")
]
MinGroupOpt = Annotated[
    int, typer.Option("--min-group-size", help="Groups with fewer rows are listed, not scored.")
]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace an existing output folder.")]


def audit(
    bundle: BundleArg,
    data: DataArg,
    sensitive: SensitiveOpt,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder to write [<bundle>.audit].")
    ] = None,
    min_group_size: MinGroupOpt = 30,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", help="Resamples for each interval.")
    ] = 1000,
    positive: Annotated[
        str | None, typer.Option(help="The positive class of a binary model [the second].")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the resamples.")] = 0,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Audit a bundle's predictions on DATA by group: rates, disparities, intervals."""
    from deepstrata.audit.groups import parse_sensitive
    from deepstrata.audit.run import audit_bundle, check_output, default_output, write_audit

    columns = parse_sensitive(sensitive)
    out = output or default_output(bundle)
    check_output(out, overwrite)
    result = audit_bundle(
        bundle,
        data,
        columns,
        min_group_size=min_group_size,
        resamples=bootstrap,
        seed=seed,
        positive=positive,
    )
    write_audit(result, out)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_audit(result)
    print(f"audit written to {out}/audit.html and {out}/audit.json", file=sys.stderr)


def print_audit(result: dict) -> None:
    """Each grouping's disparities (and the four-fifths rule) as a table."""
    from deepstrata.audit.page import NAMES
    from deepstrata.cli.display import print_table
    from deepstrata.report.html import fmt

    for grouping in result["groupings"]:
        rows = []
        for name, value in grouping["disparities"].items():
            interval = f"[{fmt(value['low'], 3)}, {fmt(value['high'], 3)}]"
            rows.append([NAMES.get(name, name), fmt(value["value"], 3), interval])
        rule = grouping.get("four_fifths")
        if rule:
            verdict = "passes" if rule["passes"] else "FAILS"
            rows.append(["four-fifths rule", fmt(rule["ratio"], 3), verdict])
        scored = len(grouping["groups"])
        small = len(grouping["too_small"])
        title = f"by {grouping['name']}: {scored} groups scored" + (
            f", {small} too small" if small else ""
        )
        print_table(title, ["disparity", "value", "interval"], rows)

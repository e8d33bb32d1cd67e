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

from deepstrata.cli.common import BundleArg, ColumnOpt, DataArg, IgnoreOpt, JsonOpt, QuietOpt

SensitiveOpt = Annotated[
    str | None,
    typer.Option(
        "--sensitive",
        help="Columns to audit by, comma-separated: sex,race [the bundle's fit --sensitive].",
    ),
]
MinGroupOpt = Annotated[
    int, typer.Option("--min-group-size", help="Groups with fewer rows are listed, not scored.")
]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace an existing output folder.")]


def audit(
    bundle: BundleArg,
    data: DataArg,
    sensitive: SensitiveOpt = None,
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

    columns = parse_sensitive(sensitive or bundle_sensitive(bundle))
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


def bundle_sensitive(bundle: Path) -> str | None:
    """The sensitive columns the bundle was fitted with (``fit --sensitive``), if any."""
    from deepstrata.bundle import read_bundle

    config, _, _ = read_bundle(bundle)  # verified against its manifest first
    return config.get("training", {}).get("sensitive")


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


def audit_data(
    data: DataArg,
    target: Annotated[str, typer.Option(help="The label column.")],
    folds: Annotated[int, typer.Option(help="Networks trained for out-of-fold probabilities.")] = 5,
    test: Annotated[
        Path | None, typer.Option(help="A test set: its rows also in DATA are leakage.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder to write [runs/<data>.audit-data]."),
    ] = None,
    labels: Annotated[
        bool, typer.Option(help="Search for label errors (--no-labels: duplicates only).")
    ] = True,
    near_tolerance: Annotated[
        float, typer.Option(help="Near duplicates: numbers this many std apart on average.")
    ] = 0.01,
    max_epochs: Annotated[int | None, typer.Option(help="Epochs at most per fold.")] = None,
    learning_rate: Annotated[
        str | None, typer.Option(help="A rate, or auto: the range test's [auto].")
    ] = None,
    ensemble: Annotated[
        bool | None, typer.Option(help="Folds of the network and a classical model [auto].")
    ] = None,
    embeddings: Annotated[
        bool | None,
        typer.Option(
            help="Label errors and near duplicates on pretrained embeddings "
            "[auto: when an input is an image or text column]."
        ),
    ] = None,
    backdoor: Annotated[
        bool | None,
        typer.Option(
            help="Activation clustering of a probe network per class, for planted "
            "triggers [auto: when an input is an image column]."
        ),
    ] = None,
    strategy: Annotated[
        str | None, typer.Option(help="scratch|finetune: label errors from K networks [auto].")
    ] = None,
    seed: Annotated[int, typer.Option(help="Drives every random number.")] = 0,
    column: ColumnOpt = None,
    ignore: IgnoreOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Likely label errors (confident learning), duplicates, train/test leakage and, for
    images, a backdoor check of DATA; audit_data.html shows them."""
    from deepstrata.audit.dataset import audit_data as run
    from deepstrata.audit.run import check_output, write_folder
    from deepstrata.config import FitConfig

    out = output or Path("runs") / f"{Path(data).stem}.audit-data"
    check_output(out, overwrite)
    settings = {"target": target, "folds": folds, "seed": seed, "ensemble": ensemble}
    settings |= {"columns": column or [], "ignore": ignore or []}
    given = {"max_epochs": max_epochs, "learning_rate": learning_rate, "strategy": strategy}
    settings |= {name: value for name, value in given.items() if value is not None}
    cfg = FitConfig.from_dict(settings, source="flags")
    result, files = run(
        data,
        cfg,
        test=test,
        labels=labels,
        tolerance=near_tolerance,
        embeddings=embeddings,
        backdoor=backdoor,
        progress=not quiet,
    )
    write_folder(out, {"audit_data.json": json.dumps(result, indent=2).encode(), **files})
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_data_audit(result)
    print(f"audit written to {out}", file=sys.stderr)


def print_data_audit(result: dict) -> None:
    from deepstrata.cli.display import print_table

    exact, near = result["duplicates"]["exact"], result["duplicates"]["near"]
    rows = [
        [
            "exact duplicates",
            f"{exact['rows']} rows in {exact['groups_found']} groups "
            f"({exact['conflicting_groups']} with different labels)",
        ],
        ["near duplicates", f"{near['pairs_found']} pairs"],
    ]
    if "near_embeddings" in result["duplicates"]:
        pairs = result["duplicates"]["near_embeddings"]["pairs_found"]
        rows.append(["near duplicates (embeddings)", f"{pairs} pairs"])
    if "leakage" in result:
        leak = result["leakage"]
        rows.append(
            [
                "test rows also in training",
                f"{leak['exact']['rows']} exact, {leak['near']['rows']} near, of {leak['test_rows']}",
            ]
        )
    if "label_issues" in result:
        found = result["label_issues"]
        rows.append(
            [
                "likely label errors",
                f"{found['found']} of {found['rows_checked']} rows ({found['share']:.1%})",
            ]
        )
    if "backdoor" in result:
        check = result["backdoor"]
        flagged = ", ".join(check["flagged_classes"]) or "none"
        rows.append(["backdoor check", f"classes flagged: {flagged}; {check['found']} rows"])
    print_table(f"{result['data']}: {result['rows']} rows", ["finding", "count"], rows)
    for issue in result.get("label_issues", {}).get("worst", [])[:10]:
        print(
            f"row {issue['row']}: given {issue['given']!r}, suggested {issue['suggested']!r} "
            f"(quality {issue['quality']:.3f})"
        )


def card(
    bundle: BundleArg,
    card_file: Annotated[
        Path | None,
        typer.Option("--card", help="card.yaml: what only the owner knows (intended use, …)."),
    ] = None,
    audit_file: Annotated[
        Path | None, typer.Option("--audit", help="An audit.json from `deepstrata audit`.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Markdown file to write [stdout].")
    ] = None,
) -> None:
    """Print a bundle's model card as Markdown (intended use, data, evaluation, groups)."""
    from deepstrata.bundle import read_bundle
    from deepstrata.cli.common import write_atomically
    from deepstrata.errors import ConfigError
    from deepstrata.report.card import model_card, read_card_file

    owner = read_card_file(card_file) if card_file else {}
    audit_result = None
    if audit_file is not None:
        try:
            audit_result = json.loads(Path(audit_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot read {audit_file}: {error}", option="--audit") from None
    config, _, metrics = read_bundle(bundle)  # verified against its manifest first
    text = model_card(config, metrics, owner, audit_result)
    if output is None:
        print(text)
        return
    write_atomically(output, lambda path: Path(path).write_text(text, encoding="utf-8"))
    print(f"model card written to {output}", file=sys.stderr)

"""``deepstrata explain``: why a bundle predicts what it does, row by row."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.cli.common import BundleArg, DataArg, JsonOpt

METHOD_HELP = "auto | ig | gradshap | tree | shap | exact | lime | permutation | attention."
ImageBaselineOpt = Annotated[
    str, typer.Option(help="Images' baseline: blurred (each row's own image) or mean (colour).")
]


def parse_rows(text: str | None) -> tuple[int, int | None] | None:
    """``"10:50"`` -> (10, 50); ``":50"`` -> (0, 50); ``"10:"`` -> (10, None).

    >>> parse_rows("3:7"), parse_rows(":5"), parse_rows("2:")
    ((3, 7), (0, 5), (2, None))
    """
    from deepstrata.errors import ConfigError

    if text is None:
        return None
    start, colon, stop = text.partition(":")
    try:
        if not colon:
            raise ValueError
        return int(start or 0), (int(stop) if stop else None)
    except ValueError:
        raise ConfigError(
            f"expected START:STOP (0-based, STOP excluded), got {text!r}", option="--rows"
        ) from None


def explain(
    bundle: BundleArg,
    data: DataArg,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder to write [BUNDLE.explain]."),
    ] = None,
    method: Annotated[str, typer.Option(help=METHOD_HELP)] = "auto",
    rows: Annotated[
        str | None, typer.Option(help="Rows START:STOP to explain (0-based) [all].")
    ] = None,
    max_rows: Annotated[int, typer.Option(help="Refuse to explain more rows.")] = 1000,
    target_class: Annotated[
        str | None, typer.Option(help="Explain this class's probability [the predicted one].")
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="Coalitions (shap) or neighbours (lime) per row.")
    ] = None,
    steps: Annotated[int, typer.Option(help="Integrated gradients: steps of the integral.")] = 50,
    image_baseline: ImageBaselineOpt = "blurred",
    compare: Annotated[
        list[str] | None, typer.Option(help="Another method to measure rank agreement with.")
    ] = None,
    faithfulness: Annotated[
        bool, typer.Option(help="Measure faithfulness (deletion, insertion, randomisation).")
    ] = True,
    words: Annotated[
        bool, typer.Option(help="Text columns: each word's attribution (KernelSHAP).")
    ] = True,
    table_format: Annotated[
        str, typer.Option("--format", help="Attributions as csv or parquet.")
    ] = "csv",
    seed: Annotated[int, typer.Option(help="Seed of every sample drawn.")] = 0,
    into_bundle: Annotated[
        bool,
        typer.Option(help="Also save the global importance in the bundle, for its report."),
    ] = False,
    as_json: JsonOpt = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Explain a bundle's predictions on DATA: attributions per row and column, global
    importance, faithfulness, explain.html."""
    from deepstrata import api
    from deepstrata.data.sources import read_table
    from deepstrata.explain import explain as run
    from deepstrata.explain.output import check_destination, write_folder

    folder = output or bundle.with_name(bundle.name + ".explain")
    check_destination(folder, overwrite=overwrite, table_format=table_format)
    span = parse_rows(rows)
    model = api.load(bundle)
    explanation = run(  # checks every option against the model and data before any work
        model,
        read_table(data),
        method=method,
        rows=span,
        target_class=target_class,
        max_rows=max_rows,
        samples=samples,
        steps=steps,
        seed=seed,
        faithfulness=faithfulness,
        compare=tuple(compare or ()),
        words=words,
        image_baseline=image_baseline,
    )
    title = f"Why {model.schema.target}? {Path(str(data)).name} explained"
    write_folder(explanation, folder, title=title, table_format=table_format)
    if into_bundle:
        _save_into_bundle(bundle, explanation)
    if as_json:
        print(json.dumps(explanation.to_dict(), indent=2, default=str))
    else:
        _print_summary(explanation)
    print(
        f"{len(explanation.rows)} rows explained ({explanation.method}) in {folder}",
        file=sys.stderr,
    )


def _save_into_bundle(bundle: Path, explanation) -> None:
    """explain.json without the rows into the bundle; its report redrawn, manifest rehashed."""
    from deepstrata.report.inputs import EXPLAIN
    from deepstrata.report.render import write_report

    summary = json.dumps(explanation.to_dict(rows=False), indent=2, default=str)
    write_report(bundle, add={EXPLAIN: summary.encode("utf-8")})
    print(f"global importance saved in {bundle}; its report.html redrawn", file=sys.stderr)


def _print_summary(explanation) -> None:
    from deepstrata.cli.display import print_table

    importance = explanation.global_importance()
    print_table(
        f"global importance ({explanation.method}: mean |attribution|, 95 % interval)",
        ["column", "importance", "interval"],
        [
            [r.column, f"{r.importance:.4g}", f"{r.low:.4g} - {r.high:.4g}"]
            for r in importance.itertuples()
        ],
    )
    rows = [
        [key, f"{value:.4g}" if isinstance(value, float) else str(value)]
        for key, value in explanation.faithfulness.items()
    ]
    if rows:
        print_table("faithfulness", ["measure", "value"], rows)

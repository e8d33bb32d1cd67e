"""``deepstrata inspect`` and ``deepstrata embed``: what the data is, and its embeddings."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.cli.common import ColumnOpt, DataArg, JsonOpt, write_atomically
from deepstrata.config import OPTIONS, default


def inspect(
    data: DataArg,
    target: Annotated[str | None, typer.Option(help="The column to predict.")] = None,
    column: ColumnOpt = None,
    group: Annotated[str | None, typer.Option(help=OPTIONS["group"].help)] = None,
    group_pattern: Annotated[str | None, typer.Option(help=OPTIONS["group_pattern"].help)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the schema deepstrata infers: one row per column (kind, role, why); and which
    columns look like groups (a speaker, a patient) to keep on one side of validation."""
    from deepstrata.cli.display import print_table
    from deepstrata.config import FitConfig, parse_columns
    from deepstrata.data.folders import default_target, is_folder, summary, with_groups
    from deepstrata.data.schema import format_schema, group_hints, infer_schema
    from deepstrata.data.sources import read_table

    group = FitConfig(group=group, group_pattern=group_pattern).group  # checked as fit does
    table = read_table(data)
    if group_pattern is not None:
        table = with_groups(table, group_pattern)
    target = target or default_target(table)  # as fit does: a folder's class sub-folder
    schema = infer_schema(
        table.frame,
        target=target,
        columns=parse_columns(column or []),
        source=table.source,
        group=group,
    )
    if as_json:
        print(json.dumps(schema.to_dict(), indent=2))
        return
    title = f"{data}: {schema.rows} rows" + (f", task {schema.task}" if schema.task else "")
    if is_folder(table):
        title = summary(table) + (f", task {schema.task}" if schema.task else "")
    print_table(
        title,
        ["column", "kind", "role", "missing", "unique", "examples", "why"],
        format_schema(schema),
    )
    if group is None:
        for line in group_hints(table.frame, schema):
            print(line)


def embed(
    data: DataArg,
    column: Annotated[
        str | None,
        typer.Option(help="The image or text column [a folder's files; the only such column]."),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(help="Embed the column as this kind: text or image. [as inferred]"),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")] = Path(
        "embeddings.parquet"
    ),
    keep: Annotated[
        list[str] | None, typer.Option(help="Copy an input column (e.g. an id) into the output.")
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Images: pixels per side. [224]")] = None,
    text_max_length: Annotated[int, typer.Option(help="Text: tokens kept.")] = default(
        "text_max_length"
    ),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Write a column's pretrained embeddings (EfficientNet-Lite0, all-MiniLM-L6-v2) to Parquet."""
    from deepstrata.errors import ConfigError
    from deepstrata.recipes.embed import embed as embed_column

    if output.exists() and not overwrite:
        raise ConfigError(f"{output} already exists; pass --overwrite", option="--output")
    frame = embed_column(
        data,
        column,
        kind=kind,
        keep=keep or [],
        image_size=image_size,
        text_max_length=text_max_length,
        progress=not quiet,
    )
    write_atomically(output, lambda path: frame.to_parquet(path, index=False))
    width = sum(1 for name in frame.columns if name.rsplit("_", 1)[-1].isdigit())
    print(f"{len(frame)} rows x {width} values written to {output}", file=sys.stderr)

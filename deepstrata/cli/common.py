"""What several commands share: argument types and an atomic file write."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataArg = Annotated[
    Path,
    typer.Argument(help="A CSV, TSV, Parquet or JSONL file, or a folder of class sub-folders."),
]
BundleArg = Annotated[Path, typer.Argument(help="A bundle directory written by `deepstrata fit`.")]
ColumnOpt = Annotated[
    list[str] | None,
    typer.Option("--column", help="Force a column's kind: NAME=KIND (repeatable)."),
]
IgnoreOpt = Annotated[list[str] | None, typer.Option(help="Leave a column out (repeatable).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


def write_atomically(path: Path, write) -> None:
    """``write(temporary_path)`` beside ``path``, then renamed onto it: a failure leaves no
    half-written file and the old one whole. The file gets the permissions a plain ``open``
    would give it (mkstemp's are owner-only)."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def print_metrics(title: str, metrics: dict) -> None:
    from deepstrata.cli.display import print_table

    print_table(
        title, ["metric", "value"], [[name, f"{value:.4f}"] for name, value in metrics.items()]
    )

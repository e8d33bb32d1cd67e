"""``deepstrata report``: draw a bundle's report.html again from its files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    run_dir: Annotated[
        Path, typer.Argument(help="A bundle directory written by `deepstrata fit`.")
    ],
) -> None:
    """Render the bundle's report.html again from its files (and update its manifest)."""
    from deepstrata.errors import BundleError
    from deepstrata.report.render import write_report

    if not run_dir.exists():
        raise BundleError("does not exist; pass a bundle directory", path=str(run_dir))
    if not run_dir.is_dir():
        raise BundleError("is not a directory; pass a bundle directory", path=str(run_dir))
    print(f"report written to {write_report(run_dir)}")
